"""A stored node's rows in its row order, sorted only when they are not nearly so already.

A node's query carries the hidden ``ROW_ORDER``, and what is stored must hold the rows in that
order (pandas' order). ``ORDER BY`` sorts the whole result: at 10M rows it was 1.7 s of a join's
3.6 s and 0.5 s of a filter's 0.9 s. Yet DuckDB's parallel pipelines keep the rows of each batch
in their order: a scan, a filter or a projection comes out wholly in order, a many-to-one join
in a few dozen ascending runs. So the rows are fetched unsorted with their ``ROW_ORDER``, and

- already ascending: that is the answer;
- at most ``MOST_RUNS`` stretches of consecutive rows once sorted (a stable sort of the keys:
  a merge of their ascending runs): those stretches, as slices of the fetched table (no copy);
- anything else: DuckDB sorts the fetched rows (the query is not run again).

Every way gives the rows ``ORDER BY ROW_ORDER`` gives (``ROW_ORDER`` has no ties).
"""

from __future__ import annotations

from typing import Any

from .relation import ROW_ORDER, Relation, column_list, ordered_output

#: More runs than this are sorted by DuckDB: thousands of slices would be stored as as many batches.
MOST_RUNS = 1024


def fetch_in_row_order(connection: Any, rel: Relation, scratch_name: str) -> Any:
    """``rel``'s rows as an Arrow table, in its row order; ``scratch_name``: a name the
    connection may register the fetched rows under while it sorts them."""
    import pyarrow as pa

    if rel.order_keys or not rel.names:  # ordered by its own columns (a sorted group): DuckDB sorts
        return connection.sql(ordered_output(rel)).to_arrow_table()
    columns = column_list(rel.names)
    fetched = connection.sql(f"SELECT {columns}, {ROW_ORDER} FROM ({rel.sql})").to_arrow_table()
    runs = sorted_slices(fetched.column(ROW_ORDER))
    if runs is None:
        connection.register(scratch_name, fetched)
        try:
            return connection.sql(f"SELECT {columns} FROM {scratch_name} ORDER BY {ROW_ORDER}").to_arrow_table()
        finally:
            connection.unregister(scratch_name)
    rows = fetched.drop_columns([ROW_ORDER])
    if len(runs) == 1:
        return rows
    return pa.concat_tables([rows.slice(start, stop - start) for start, stop in runs])


def sorted_slices(keys: Any) -> list[tuple[int, int]] | None:
    """``[(start, stop), ...]``: slices of the rows whose concatenation has ``keys`` ascending
    (an Arrow chunked array of integers, or of DuckDB's HUGEINT, decimal128(38, 0)), or ``None``
    when that takes over ``MOST_RUNS`` slices, a key is missing, or a key is not an int64.

    A stable sort of the keys gives the order; a stretch of it that takes consecutive rows is one
    slice. Rows that fall more than ``MOST_RUNS`` times are not sorted here at all."""
    import numpy as np

    count = len(keys)
    if count == 0:
        return [(0, 0)]
    if keys.null_count:
        return None
    values = _int64_keys(keys.combine_chunks())
    if values is None:
        return None
    falls = int(np.count_nonzero(values[1:] < values[:-1]))
    if falls == 0:
        return [(0, count)]
    if falls >= MOST_RUNS:  # each fall starts a slice at least: sorting would be wasted
        return None
    order = np.argsort(values, kind="stable")  # a merge of a few ascending runs (Timsort)
    cuts = np.flatnonzero(np.diff(order) != 1) + 1
    if len(cuts) >= MOST_RUNS:
        return None
    firsts = np.concatenate(([0], cuts))
    lengths = np.diff(np.concatenate((firsts, [count])))
    starts = order[firsts]
    return [(start, start + length) for start, length in zip(starts.tolist(), lengths.tolist(), strict=True)]


def _int64_keys(array: Any) -> Any:
    """The keys as an int64 numpy array, or ``None``: an integer array as it is; a decimal128 of
    scale 0 whose values all fit in an int64 (a join's row number: left row x bound + right row)
    as its lower 64 bits."""
    import numpy as np
    import pyarrow as pa

    if pa.types.is_integer(array.type):
        if pa.types.is_uint64(array.type):
            return None
        return array.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if pa.types.is_decimal128(array.type) and array.type.scale == 0:
        words = np.frombuffer(array.buffers()[1], dtype=np.uint64)
        words = words[2 * array.offset : 2 * (array.offset + len(array))].reshape(-1, 2)
        low, high = words[:, 0], words[:, 1]  # little-endian: the low word first
        if high.any() or (low >> np.uint64(63)).any():  # negative, or past int64
            return None
        return low.view(np.int64)
    return None
