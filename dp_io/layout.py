"""Where a run's outputs are, by name: ``{root}/{run_id}/{key segment}/.../{node}{suffix}``.

A partitioned output adds one segment, ``{node}/{partition}{suffix}``; a streamed (generator)
output is a folder ``{node}.parts/`` holding numbered part files and a ``manifest.json`` written
last. Every segment taken from a key or a partition is quoted so that it can never climb out of
the run's folder or hide itself. :class:`dp_io.store.OutputStore` writes and cleans up there.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

PARTS_SUFFIX = ".parts"
MANIFEST_NAME = "manifest.json"
FILE_SUFFIXES = (".arrow", ".parquet", ".json", ".pkl")
OUTPUT_SUFFIXES = (*FILE_SUFFIXES, PARTS_SUFFIX)

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_RUN_ID = re.compile(r"[A-Za-z0-9_\-]+")


def quote_segment(segment: str) -> str:
    """One path segment from a key or partition: no ``/``, no ``..``, no hidden names."""
    if _SAFE_SEGMENT.fullmatch(segment):
        return segment
    quoted = urllib.parse.quote(segment, safe="")
    return "%2E" + quoted[1:] if quoted.startswith(".") else quoted or "%00"


def unquote_segment(segment: str) -> str:
    return "" if segment == "%00" else urllib.parse.unquote(segment)


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id or ""):
        raise ValueError(f"run id {run_id!r} is not a Dagster run id (letters, digits, '-', '_')")
    return run_id


@dataclass(frozen=True)
class StoredOutput:
    """One stored output: a file, or a ``.parts`` folder with its manifest."""

    path: str  # filesystem path (no protocol)
    suffix: str  # one of OUTPUT_SUFFIXES

    @property
    def is_parts(self) -> bool:
        return self.suffix == PARTS_SUFFIX


def strip_output_suffix(name: str) -> str | None:
    for suffix in OUTPUT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None
