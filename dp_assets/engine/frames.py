"""pandas frames into the engine as Arrow, and Arrow back into the frames pandas would have built.

In: ``pyarrow.Table.from_pandas`` (no copy for numeric columns), refused (``NotSupported``: the
node runs in pandas) for what DuckDB would read with other rules — nullable extension dtypes
(``Int64``, ``boolean``: pandas' missing-value logic differs from numpy's), categoricals,
mixed object columns, non-text column names.

Out: Arrow's own conversion gives pandas' dtypes for numpy-backed columns (an integer column with
a missing value is float64, text is ``str``); ``Hints`` then give back what only the input frames
knew: a column's time zone (DuckDB answers in UTC), its time unit, text kept as ``object``.
"""

from __future__ import annotations

from typing import Any

from .errors import NotSupported
from .relation import ROW_ORDER, folded_name
from .sql_expressions import kind_of_arrow

Hints = dict[str, Any]  # column name -> the pandas dtype an input frame gave it
INT64_WHEN_EMPTY = "int64 when empty"  # a hint: float64, except int64 in a frame of no rows


def frame_to_arrow(df: Any) -> tuple[Any, Hints]:
    import pyarrow as pa

    if not all(isinstance(name, str) for name in df.columns) or df.columns.has_duplicates or ROW_ORDER in df.columns:
        raise NotSupported("column names that are not distinct text")
    check_dtypes(dict(df.dtypes.items()))
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
        raise NotSupported(f"a frame Arrow cannot hold: {err}") from None
    check_kinds(table)
    return table.replace_schema_metadata(None), dict(df.dtypes.items())


def check_dtypes(dtypes: Hints) -> None:
    """Refuse the pandas dtypes DuckDB would read by other rules (a frame's, or those
    ``pandas.read_parquet`` gives a file from the pandas metadata it holds)."""
    import pandas as pd

    for name, dtype in dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype) or (
            isinstance(dtype, pd.api.extensions.ExtensionDtype)
            and not isinstance(dtype, pd.DatetimeTZDtype)
            and not _is_default_str(dtype)
        ):
            raise NotSupported(f"column {name!r} of dtype {dtype}")


def _is_default_str(dtype: Any) -> bool:
    import numpy as np
    import pandas as pd

    return isinstance(dtype, pd.StringDtype) and dtype.na_value is np.nan


def check_kinds(table: Any) -> None:
    if "" in table.column_names:  # DuckDB names such a column v1, v2...
        raise NotSupported("an empty column name")
    folded = {folded_name(name) for name in table.column_names}
    if len(folded) < table.num_columns:  # DuckDB folds ASCII case: it would rename one (group_1)
        raise NotSupported("column names that differ only by case")
    for field in table.schema:
        if kind_of_arrow(field.type) in (None, "null"):
            raise NotSupported(f"column {field.name!r} of Arrow type {field.type}")


def with_row_order(table: Any) -> Any:
    """``table`` with its row numbers, chunked as its columns are: DuckDB then scans the
    batches in parallel without first making the columns' chunks agree (a copy)."""
    import numpy as np
    import pyarrow as pa

    table = table.unify_dictionaries() if table.num_columns else table
    sizes = [len(chunk) for chunk in table.column(0).chunks] if table.num_columns else [table.num_rows]
    starts = np.cumsum([0, *sizes])
    chunks = [pa.array(np.arange(starts[i], starts[i] + size, dtype=np.int64)) for i, size in enumerate(sizes)]
    return table.append_column(ROW_ORDER, pa.chunked_array(chunks, type=pa.int64()))


def arrow_with_hints(table: Any, hints: Hints) -> Any:
    """The time zone and unit of each hinted timestamp column, in Arrow: a stored table then
    reads back as pandas' frame in any later run too."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        dtype = hints.get(field.name)
        if dtype is None or not pa.types.is_timestamp(field.type):
            continue
        if isinstance(dtype, pd.DatetimeTZDtype):
            wanted = pa.timestamp(dtype.unit, tz=str(dtype.tz))
        elif pd.api.types.is_datetime64_dtype(dtype):
            wanted = pa.timestamp(np.datetime_data(dtype)[0], tz=None)
        else:
            continue
        if field.type != wanted and (field.type.tz is None) == (wanted.tz is None):
            table = table.set_column(index, field.name, table.column(index).cast(wanted))
    return table


def arrow_to_frame(table: Any, hints: Hints) -> Any:
    """The frame pandas would have built: Arrow's conversion, then each hinted column's dtype."""
    import pandas as pd

    df = table.to_pandas()
    for name, dtype in hints.items():
        if name not in df.columns:
            continue
        if isinstance(dtype, str):
            if dtype == INT64_WHEN_EMPTY and df.empty:
                df[name] = df[name].astype("int64")
            continue
        got = df[name].dtype
        if pd.api.types.is_object_dtype(dtype) and isinstance(got, pd.StringDtype):
            df[name] = df[name].astype(object)
        elif isinstance(dtype, pd.DatetimeTZDtype) and isinstance(got, pd.DatetimeTZDtype) and got != dtype:
            df[name] = df[name].dt.tz_convert(dtype.tz).astype(dtype)
        elif pd.api.types.is_datetime64_dtype(dtype) and pd.api.types.is_datetime64_dtype(got) and got != dtype:
            df[name] = df[name].astype(dtype)
    return df
