"""A FileInput asked for its first rows only (a designer preview on a row sample,
``dp_assets/catalog/nodes/first_rows.py``) gives the frame of the whole read cut to those rows:
the same rows, columns, dtypes and values, for any file, glob and row count (Hypothesis). And it
does not read the rest: a file whose tail is broken reads its first rows without a complaint,
where the whole read fails.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from node_helpers import make_ctx, run_node

from dp_assets.catalog.nodes.first_rows import first_rows_only, read_parquet_head
from dp_resources.files import FilesResource
from tests.fuzzing import fuzz_settings

MAYBE = st.booleans()


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesResource:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    (tmp_path / "data").mkdir(exist_ok=True)
    return FilesResource(data_dir=str(tmp_path / "data"))


@st.composite
def tables(draw, min_rows: int = 0) -> pa.Table:
    """Integer and boolean columns with or without a missing value (pandas reads those as float64
    / object only when one is missing), floats, text, dates."""
    rows = draw(st.integers(min_rows, 120))

    def column(values, kind):
        return pa.array(
            draw(st.lists(st.one_of(st.none(), values) if draw(MAYBE) else values, min_size=rows, max_size=rows)), kind
        )

    return pa.table(
        {
            "i": column(st.integers(-(2**40), 2**40), pa.int64()),
            "b": column(st.booleans(), pa.bool_()),
            "f": column(st.floats(allow_nan=False, width=32), pa.float64()),
            "s": column(st.text(max_size=5), pa.string()),
            "d": column(st.dates(), pa.date32()),
        }
    )


def _whole_then_cut(path: Path, columns: list[str] | None, rows: int) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns).head(rows).reset_index(drop=True)


@fuzz_settings(80, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    table=tables(),
    row_group=st.integers(1, 40),
    rows=st.integers(1, 150),
    columns=st.one_of(st.none(), st.lists(st.sampled_from("ibfsd"), min_size=1, max_size=5, unique=True)),
    written_by_pandas=st.booleans(),
)
def test_first_rows_of_a_parquet_file_are_the_whole_reads(
    tmp_path_factory, table, row_group, rows, columns, written_by_pandas
):
    path = tmp_path_factory.mktemp("pq") / "t.parquet"
    if written_by_pandas:  # pandas metadata: a nullable Int64 column stays Int64 either way
        frame = table.to_pandas()
        frame["i"] = frame["i"].astype("Int64")
        frame.to_parquet(path, row_group_size=row_group)
    else:
        pq.write_table(table, path, row_group_size=row_group)
    head = read_parquet_head(path, columns, rows)
    assert head is not None, "the file has statistics: the first rows are read alone"
    pd.testing.assert_frame_equal(head.reset_index(drop=True), _whole_then_cut(path, columns, rows))


@fuzz_settings(25, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Found by a long run (DP_FUZZ_EXAMPLES=10): a declared date column with no value in the first
# rows kept the reader's NaN where the whole read has NaT.
@example(
    parts=[
        pa.table(
            {
                "i": [0] * 8,
                "b": [False] * 8,
                "f": [0.0] * 8,
                "s": [""] * 8,
                "d": pa.array([None] * 7 + [dt.date(2000, 1, 1)], pa.date32()),
            }
        )
    ],
    rows=1,
    fmt="csv",
)
@given(
    parts=st.lists(tables(), min_size=1, max_size=3), rows=st.integers(1, 150), fmt=st.sampled_from(["csv", "parquet"])
)
def test_a_file_input_on_its_first_rows_is_the_whole_read_cut(files, parts, rows, fmt):
    """A glob of CSV (every column's type declared, so a prefix reads as the whole) or Parquet
    files: the FileInput's output with first_rows_only equals its whole output cut."""
    folder = Path(files.data_dir) / f"parts-{fmt}"
    for old in folder.glob("*"):
        old.unlink()
    folder.mkdir(exist_ok=True)
    for index, part in enumerate(parts):
        frame = part.to_pandas()
        if fmt == "csv":
            # every field quoted: pandas writes a lone carriage return in a text unquoted, which
            # any CSV reader (pandas' own included) then takes for the end of a line
            frame.to_csv(folder / f"{index}.csv", index=False, quoting=csv.QUOTE_ALL)
        else:
            frame.to_parquet(folder / f"{index}.parquet", row_group_size=7)
    params = {"path": f"parts-{fmt}/*.{fmt}"}
    if fmt == "csv":
        params["columns"] = {"i": "integer", "b": "boolean", "f": "float", "s": "string", "d": "date"}
    ctx = make_ctx(resources={"files": files})
    whole = run_node("FileInput", params, {}, ctx).head(rows).reset_index(drop=True)
    with first_rows_only(rows):
        head = run_node("FileInput", params, {}, ctx)
    pd.testing.assert_frame_equal(head.reset_index(drop=True), whole)


def test_the_rest_of_the_file_is_not_read(files):
    """A CSV with declared columns whose line 1,001 is broken: the whole read fails naming the
    file; its first 100 rows read as the whole file's would."""
    path = Path(files.data_dir) / "broken_tail.csv"
    lines = ["id,name"] + [f"{n},n{n}" for n in range(1000)] + ['1000,"never closed']
    path.write_text("\n".join(lines) + "\n" + "x" * 100 + "\n")
    params = {"path": "broken_tail.csv", "columns": {"id": "integer", "name": "string"}}
    ctx = make_ctx(resources={"files": files})
    with pytest.raises(ValueError, match=r"broken_tail\.csv"):
        run_node("FileInput", params, {}, ctx)
    with first_rows_only(100):
        head = run_node("FileInput", params, {}, ctx)
    assert head["id"].tolist() == list(range(100)) and head["name"].tolist() == [f"n{n}" for n in range(100)]
    assert str(head["id"].dtype) == "Int64"


def test_an_undeclared_csv_is_read_whole_so_its_types_are_the_whole_files(files):
    """A column that is whole numbers in the first rows and has a gap later reads as float64 from
    the whole file: a prefix would read it as int64, so such a CSV is read whole, then cut."""
    path = Path(files.data_dir) / "gap.csv"
    path.write_text("k,v\n" + "\n".join(f"{n},a" for n in range(50)) + "\n,b\n7,c\n")
    ctx = make_ctx(resources={"files": files})
    with first_rows_only(5):
        head = run_node("FileInput", {"path": "gap.csv"}, {}, ctx)
    whole = pd.read_csv(path).head(5)
    pd.testing.assert_frame_equal(head, whole)
    assert str(head["k"].dtype) == "float64"
