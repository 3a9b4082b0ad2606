"""Reading only a file's first rows, for a caller that keeps only those (a designer preview on a
row sample): the same frame as reading the whole file and keeping its first rows, without the
cost of the rest.

Where a part of the file could change what the first rows read as, the whole file is read: a
CSV column whose type pandas would guess from every row (only columns whose type the spec fixes,
by ``dtype``, a declared ``columns`` type or ``parse_dates``, read the same from a prefix), and a
Parquet file with a stored index or without the statistics that say whether an integer or
boolean column has a missing value further on (pandas reads such a column as float64 / object).
JSON and Excel files are read whole. What lies past the first rows is not read, so a bad line or
a value that does not convert there is not seen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from dp_assets.deferred import pd

#: At most this many rows of each source are kept by whoever runs the flow now; None: all.
_ROW_LIMIT: ContextVar[int | None] = ContextVar("dp_source_row_limit", default=None)


@contextlib.contextmanager
def first_rows_only(rows: int | None) -> Iterator[None]:
    """Within the block, sources may read only their first ``rows`` rows (None: all)."""
    token = _ROW_LIMIT.set(rows)
    try:
        yield
    finally:
        _ROW_LIMIT.reset(token)


def row_limit() -> int | None:
    return _ROW_LIMIT.get()


def csv_types_fixed(path: Any, options: dict[str, Any]) -> bool:
    """Whether every column the CSV read gives has a type the spec fixes (``dtype`` from
    ``declared_read_dtypes``, or ``parse_dates``), so a prefix reads as the whole file does."""
    header = pd.read_csv(path, nrows=0, **options)
    fixed = set(options.get("dtype") or {}) | set(options.get("parse_dates") or [])
    return set(header.columns) <= fixed


def read_csv_head(path: Any, options: dict[str, Any], rows: int) -> Any:
    return pd.read_csv(path, nrows=rows, **options)


def read_parquet_head(path: Any, columns: list[str] | None, rows: int) -> Any | None:
    """The file's first ``rows`` rows as ``pd.read_parquet(path, columns=columns).head(rows)``
    gives them, reading only the batches that hold them; None when that cannot be told from the
    file's schema and statistics (the caller reads the whole file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    schema = file.schema_arrow
    metadata = schema.pandas_metadata or {}
    if any(not isinstance(index, dict) for index in metadata.get("index_columns", [])):
        return None  # a stored index: pandas makes it the frame's index
    names = list(columns) if columns is not None else list(schema.names)
    if not set(names) <= set(schema.names):
        return None  # read_parquet reports it
    nullable = columns_with_missing_values(file, names)
    if nullable is None:
        return None
    batches = []
    taken = 0
    for batch in file.iter_batches(batch_size=max(1, min(rows, 65_536)), columns=names):
        batches.append(batch)
        taken += batch.num_rows
        if taken >= rows:
            break
    table = pa.Table.from_batches(batches) if batches else schema.empty_table().select(names)
    frame = table.slice(0, rows).replace_schema_metadata(schema.metadata).to_pandas()
    # pandas reads an integer column with a missing value anywhere as float64, a boolean one as
    # object: give the prefix the type the whole file reads as.
    if not nullable:
        return frame
    whole = dict(schema.empty_table().select(names).replace_schema_metadata(schema.metadata).to_pandas().dtypes.items())
    for name in nullable:
        kind = whole[name]
        if pd.api.types.is_integer_dtype(kind) and not isinstance(kind, pd.api.extensions.ExtensionDtype):
            frame[name] = frame[name].astype("float64")
        elif pd.api.types.is_bool_dtype(kind) and not isinstance(kind, pd.api.extensions.ExtensionDtype):
            frame[name] = frame[name].astype(object)
    return frame


def columns_with_missing_values(file: Any, names: list[str]) -> set[str] | None:
    """The integer and boolean columns among ``names`` with a missing value in the file, by its
    row groups' statistics; None when a statistic is missing (not known)."""
    import pyarrow as pa

    schema, metadata = file.schema_arrow, file.metadata
    kinds = {name: schema.field(name).type for name in names}
    watched = {name for name, kind in kinds.items() if pa.types.is_integer(kind) or pa.types.is_boolean(kind)}
    found: set[str] = set()
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        if not row_group.num_rows:
            continue
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            if column.path_in_schema in watched:
                stats = column.statistics
                if stats is None or not stats.has_null_count:
                    return None
                if stats.null_count:
                    found.add(column.path_in_schema)
    return found
