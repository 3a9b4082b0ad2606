"""A stored DuckDB node's rows are in its row order without a sort where they nearly are
(dp_assets/engine/row_order.py): whatever DuckDB's threads do, the table is the one
``ORDER BY ROW_ORDER`` gives, and each of its rows is there once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.engine.chain import Engine
from dp_assets.engine.relation import ordered_output
from dp_assets.engine.row_order import MOST_RUNS, fetch_in_row_order, sorted_slices
from tests.fuzzing import fuzz_settings

CATALOG = default_catalog()


def _chunked(values: np.ndarray, size: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values[i : i + size]) for i in range(0, len(values), size)] or [pa.array(values)])


@fuzz_settings(200)
@given(
    runs=st.lists(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30), min_size=1, max_size=40),
    chunk=st.integers(1, 50),
    shuffle_seed=st.integers(0, 2**32 - 1),
)
@example(runs=[[5, 6], [1, 2], [3, 4]], chunk=2, shuffle_seed=0)  # three runs, disjoint: three slices
@example(runs=[[1, 3, 5], [2, 4, 6]], chunk=3, shuffle_seed=0)  # two interleaved runs
def test_the_slices_hold_every_row_once_with_the_keys_ascending(runs, chunk, shuffle_seed):
    values = np.array([key for run in runs for key in sorted(run)], dtype=np.int64)
    rng = np.random.default_rng(shuffle_seed)
    if shuffle_seed % 3 == 0:
        values = rng.permutation(values)
    slices = sorted_slices(_chunked(values, chunk))
    falls = int(np.count_nonzero(values[1:] < values[:-1]))
    if slices is None:
        assert falls >= MOST_RUNS or len(values) > MOST_RUNS  # only when sorting here would not pay
        return
    rows = np.concatenate([np.arange(start, stop) for start, stop in slices])
    assert sorted(rows.tolist()) == list(range(len(values)))  # every row, once
    assert (np.diff(values[rows]) >= 0).all()
    assert len(slices) <= MOST_RUNS


def test_a_join_key_of_duckdb_hugeint_is_read_as_int64_and_a_too_large_one_is_left_to_duckdb():
    import duckdb

    connection = duckdb.connect()
    blocks = "((range // 500) * 7 % 10) * 500 + range % 500"  # ten blocks of 500 rows, out of order
    fits = connection.sql(f"SELECT ({blocks})::HUGEINT * 1000 + 3 AS k FROM range(5000)").to_arrow_table()
    slices = sorted_slices(fits.column("k"))
    keys = fits.column("k").to_pylist()
    assert slices is not None and len(slices) == 10
    assert [keys[i] for start, stop in slices for i in range(start, stop)] == sorted(keys)
    big = connection.sql("SELECT (range + 1)::HUGEINT * 100000000000000000000 AS k FROM range(10)").to_arrow_table()
    assert sorted_slices(big.column("k")) is None


def _table(rng: np.random.Generator, rows: int, keys: int, chunk: int) -> pa.Table:
    table = pa.table(
        {
            "k": rng.integers(0, keys, rows),
            "x": rng.random(rows),
            "s": pa.array([f"t{v}" for v in rng.integers(0, 50, rows)], type=pa.string()),
        }
    )
    return pa.Table.from_batches(table.to_batches(max_chunksize=chunk))


@fuzz_settings(25)
@given(
    rows=st.integers(1, 60_000),
    right_rows=st.integers(1, 3_000),
    keys=st.integers(1, 5_000),
    chunk=st.sampled_from([1_000, 2_048, 7_777, 100_000]),
    how=st.sampled_from(["inner", "left", "right", "outer"]),
    threshold=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_stored_nodes_rows_are_those_order_by_gives(rows, right_rows, keys, chunk, how, threshold, seed):
    """Joins (one-to-many too), and a filter after them, on inputs of many batches: the rows the
    engine stores equal the same query's rows sorted by ROW_ORDER."""
    rng = np.random.default_rng(seed)
    engine = Engine()
    left = engine.source(_table(rng, rows, keys, chunk), {})
    right = engine.source(_table(rng, right_rows, keys, chunk).rename_columns(["k", "y", "t"]), {})
    join_params = CATALOG["JoinMerge"].params_model.model_validate({"how": how, "on": "k"})
    joined = engine.run("JoinMerge", join_params, {"left": left, "right": right}, {})
    filter_params = CATALOG["FilterRows"].params_model.model_validate({"condition": f"x < {threshold}"})
    kept = engine.run("FilterRows", filter_params, {"input": joined}, {})
    for node in (joined, kept):
        with engine.lock:
            expected = engine.connection.sql(ordered_output(node.relation)).to_arrow_table()
            got = fetch_in_row_order(engine.connection, node.relation, engine.scratch_name())
        assert got.combine_chunks().equals(expected.combine_chunks())
