"""Errors of the IO layer; each message says which asset, run or path, and what to do."""

from __future__ import annotations


class DpIOError(Exception):
    """Base of the errors raised by ``dp_io``."""


class OutputNotFoundError(DpIOError, FileNotFoundError):
    """A stored output that should exist does not (never written, pruned, or a different base)."""


class NeverMaterializedError(OutputNotFoundError):
    """An asset has no materialisation in the event log, so there is no latest value to read."""


class UnsupportedFormatError(DpIOError, ValueError):
    """A ``dp/format`` value or a stored file suffix that the IO manager does not know."""


class InvalidIdentifierError(DpIOError, ValueError):
    """A SQL identifier (schema or table) that is not ``[A-Za-z_][A-Za-z0-9_]*``."""
