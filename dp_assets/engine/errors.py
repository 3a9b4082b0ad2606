"""What the engine raises when something has no faithful DuckDB form."""

from __future__ import annotations


class NotSupported(Exception):
    """This node, expression or column type runs in pandas instead (the reason says why)."""
