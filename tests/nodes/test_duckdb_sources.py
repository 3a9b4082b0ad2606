"""A Parquet source on the DuckDB engine (issue 20): DuckDB reads the file itself, only that file
(the connection's one external access), and the rows, columns and dtypes are what
``pandas.read_parquet`` gives; a file pandas reads by other rules goes to pyarrow or pandas."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dp_assets.compiler.engine_hook import _without_missing_flags
from dp_assets.engine import NotSupported
from dp_assets.engine.chain import Engine

TEXT = st.one_of(st.none(), st.sampled_from(["", "a", "ä", "it's"]))


@st.composite
def files(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 8))
    ints = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=rows, max_size=rows))
    floats = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=rows, max_size=rows))
    text = draw(st.lists(TEXT, min_size=rows, max_size=rows))
    return pd.DataFrame(
        {
            "n": pd.Series(ints, dtype=draw(st.sampled_from(["int64", "int32"]))),
            "x": pd.Series(floats, dtype="float64"),
            "name": pd.Series(text, dtype=draw(st.sampled_from(["str", object]))),
            "flag": [bool(i % 2) for i in range(rows)],
        }
    )


def read_by_duckdb(path: Path, columns: list[str], allowed: tuple[str, ...]) -> Any:
    file = pq.ParquetFile(path)
    hints = dict(file.schema_arrow.empty_table().select(columns).to_pandas().dtypes.items())
    return Engine(allowed_paths=allowed).parquet(str(path), columns, file.schema_arrow, hints)


@settings(max_examples=25, deadline=None)
@given(files(), st.lists(st.sampled_from(["n", "x", "name", "flag"]), min_size=1, max_size=4, unique=True))
def test_duckdb_reads_a_parquet_file_as_pandas_does(frame: pd.DataFrame, columns: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.parquet"
        frame.to_parquet(path, index=False)
        assert _without_missing_flags(pq.ParquetFile(path), columns)
        got = read_by_duckdb(path, columns, (str(path),)).frame()
        pd.testing.assert_frame_equal(got, pd.read_parquet(path, columns=columns))


def test_a_missing_integer_is_seen_in_the_statistics(tmp_path: Path) -> None:
    """pandas reads an integer column with a missing value as float64: not DuckDB's to read."""
    import pyarrow as pa

    path = tmp_path / "gaps.parquet"
    pq.write_table(pa.table({"n": [1, None, 3], "x": [1.0, None, 2.0]}), path)
    assert not _without_missing_flags(pq.ParquetFile(path), ["n", "x"])
    assert _without_missing_flags(pq.ParquetFile(path), ["x"])


def test_the_engine_reads_no_other_file(tmp_path: Path) -> None:
    allowed, other = tmp_path / "allowed.parquet", tmp_path / "other.parquet"
    for path in (allowed, other):
        pd.DataFrame({"n": [1, 2]}).to_parquet(path, index=False)
    engine = Engine(allowed_paths=(str(allowed),))
    assert len(read_by_duckdb(allowed, ["n"], (str(allowed),)).frame()) == 2
    with pytest.raises(NotSupported):
        engine.parquet(str(other), ["n"], pq.read_schema(other), {})
    for sql in (
        f"SELECT * FROM read_parquet('{other}')",
        f"SELECT * FROM read_parquet('{tmp_path}/*.parquet')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        f"SET allowed_paths = ['{other}']",
    ):
        with pytest.raises(Exception, match=r"disabled by configuration|locked|Permission"):
            engine.connection.execute(sql)
