"""Materialisation metadata of a stored output: what the Dagster UI shows and retention reads.

``path`` is the contract: cross-run reads, ``dp runs`` and pruning find values through it.
"""

from __future__ import annotations

from typing import Any

import dagster as dg


def output_metadata(
    *,
    path: str,
    bytes: int,  # shadows the builtin on purpose: the metadata key users see
    format: str,  # likewise
    rows: int | None = None,
    columns: list[tuple[str, str]] | None = None,
    parts: int | None = None,
    note: str | None = None,
) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "path": dg.MetadataValue.path(path),
        "bytes": dg.MetadataValue.int(int(bytes)),
        "format": dg.MetadataValue.text(format),
    }
    if rows is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(int(rows))
    if columns is not None:
        metadata["dagster/column_schema"] = dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in columns])
        )
    if parts is not None:
        metadata["parts"] = dg.MetadataValue.int(parts)
    if note:
        metadata["dp/note"] = dg.MetadataValue.text(note)
    return metadata


def metadata_text(value: Any) -> str | None:
    """A recorded metadata value as plain text (None when absent)."""
    if value is None:
        return None
    return str(getattr(value, "value", value))
