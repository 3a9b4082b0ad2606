"""FileInput with declared `columns:`: each format returns the declared dtypes, the same as a pandas
user's read followed by explicit conversions, and a value that does not convert fails the run with
the flow, node, file, column and value (issue 17: no text column on a successful run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from node_helpers import make_ctx, run_node

from dp_assets.catalog import default_catalog
from dp_assets.catalog.conversions import convert_column
from dp_assets.catalog.schema import schema_of
from dp_resources.files import FilesResource

DECLARED = {
    "id": "integer",
    "code": "string",
    "amount": "float",
    "ok": "boolean",
    "at": "datetime",
    "day": "date",
    "note": "any",
}
# The same rows as text, as a CSV or a JSON file of strings holds them: a leading zero, blanks,
# a whole number written 3.0, yes/no, date-times with and without a time, a date-time cut to a date.
TEXT = pd.DataFrame(
    {
        "id": ["1", "2", None, "3.0"],
        "code": ["007", "8", "9", None],
        "amount": ["1.5", None, "3", "-2e3"],
        "ok": ["yes", "No", None, "TRUE"],
        "at": ["2024-01-01 10:00", "2024-01-02", None, "2024-03-01T08:30:00"],
        "day": ["2024-01-02", "2024-01-03T05:00", None, "2024-02-29"],
        "note": ["x", None, "z", "w"],
    }
)


def by_hand(text: pd.DataFrame) -> pd.DataFrame:
    """What a pandas user writes after reading every column as text."""
    return text.assign(
        id=pd.to_numeric(text["id"]).astype("Int64"),
        code=text["code"].astype("str"),
        amount=pd.to_numeric(text["amount"]).astype("float64"),
        ok=text["ok"].str.lower().map({"yes": True, "no": False, "true": True}).astype("boolean"),
        at=pd.to_datetime(text["at"], format="ISO8601"),
        day=pd.to_datetime(text["day"], format="ISO8601").dt.date,
    )


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FilesResource:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    (tmp_path / "data").mkdir()
    return FilesResource(data_dir=str(tmp_path / "data"))


def read(files: FilesResource, name: str, **params: Any) -> pd.DataFrame:
    ctx = make_ctx(resources={"files": files}, flow_id="sales", node_id="orders")
    return run_node("FileInput", {"path": name, "columns": DECLARED, **params}, {}, ctx)


def typed_source() -> pd.DataFrame:
    """The rows with a binary format's own types, none of them the declared ones."""
    return TEXT.assign(id=pd.to_numeric(TEXT["id"]), amount=pd.to_numeric(TEXT["amount"]).astype("float32"))


WRITES = [
    pytest.param("a.csv", lambda p: TEXT.to_csv(p, index=False), id="FileInput-declared-csv"),
    pytest.param("a.jsonl", lambda p: TEXT.to_json(p, orient="records", lines=True), id="FileInput-declared-jsonl"),
    pytest.param("a.json", lambda p: typed_source().to_json(p, orient="records"), id="FileInput-declared-json-typed"),
    pytest.param("a.parquet", lambda p: typed_source().to_parquet(p), id="FileInput-declared-parquet"),
    pytest.param("a.xlsx", lambda p: typed_source().to_excel(p, index=False), id="FileInput-declared-excel"),
]


@pytest.mark.parametrize(("name", "write"), WRITES)
def test_declared_columns_are_converted_on_read(files: FilesResource, name: str, write: Any) -> None:
    write(Path(files.data_dir) / name)
    result = read(files, name)
    expected = by_hand(TEXT)
    for column in [c for c in DECLARED if DECLARED[c] != "any"]:
        pd.testing.assert_series_equal(result[column], expected[column], check_dtype=True, obj=column)
    declared_schema = default_catalog()["FileInput"].infer_schema(
        default_catalog()["FileInput"].params_model(path=name, columns=DECLARED), {}
    )
    real = schema_of(result)
    assert all(real[c] == kind for c, kind in declared_schema.items() if kind not in ("any", "date"))


def test_csv_chunks_and_streams_convert_each_part(files: FilesResource) -> None:
    TEXT.to_csv(Path(files.data_dir) / "a.csv", index=False)
    whole = read(files, "a.csv")
    chunked = read(files, "a.csv", chunksize=2)
    pd.testing.assert_frame_equal(chunked, whole)
    stream = read(files, "a.csv", chunksize=3, stream=True)
    pd.testing.assert_frame_equal(stream.collect(), whole)


def test_declared_string_keeps_what_a_parser_would_guess_away(files: FilesResource) -> None:
    """'007' stays '007' (read_csv and read_json would read 7), and a JSON column named like a
    date but declared integer is not turned into dates by its name."""
    path = Path(files.data_dir) / "codes.json"
    pd.DataFrame({"code": ["007", "010"], "updated_at": [1700000000, 1700000001]}).to_json(path, orient="records")
    ctx = make_ctx(resources={"files": files})
    out = run_node("FileInput", {"path": "codes.json", "columns": {"code": "string", "updated_at": "integer"}}, {}, ctx)
    assert out["code"].tolist() == ["007", "010"]
    assert out["updated_at"].tolist() == [1700000000, 1700000001] and str(out["updated_at"].dtype) == "Int64"


BAD = [
    pytest.param("integer", ["1", "2", "ten"], "'ten' (row 3) is not a whole number", id="integer-text"),
    pytest.param("integer", ["1", "2.5"], "'2.5' (row 2) is not a whole number", id="integer-fraction"),
    pytest.param("integer", ["1", "99999999999999999999"], "(row 2) is not a whole number", id="integer-too-big"),
    pytest.param("float", ["1.5", "1,5"], "'1,5' (row 2) is not a number", id="float-comma"),
    pytest.param("boolean", ["yes", "maybe"], "'maybe' (row 2) is not true/false", id="boolean-maybe"),
    pytest.param(
        "datetime", ["2024-01-01", "not-a-date"], "'not-a-date' (row 2) is not a date-time", id="datetime-text"
    ),
    pytest.param(
        "datetime",
        ["2024-01-01T10:00+01:00", "2024-01-02T10:00"],
        "'2024-01-02T10:00' (row 2) is not a date-time with a time zone",
        id="datetime-zone-mix",
    ),
    pytest.param("date", ["2024-02-30"], "'2024-02-30' (row 1) is not a date", id="date-invalid"),
]


@pytest.mark.parametrize(("kind", "values", "message"), BAD)
def test_a_value_that_does_not_convert_names_flow_node_file_column_and_value(
    files: FilesResource, kind: str, values: list[str], message: str
) -> None:
    pd.DataFrame({"v": values}).to_csv(Path(files.data_dir) / "bad.csv", index=False)
    ctx = make_ctx(resources={"files": files}, flow_id="sales", node_id="orders")
    with pytest.raises(ValueError) as caught:
        run_node("FileInput", {"path": "bad.csv", "columns": {"v": kind}}, {}, ctx)
    text = str(caught.value)
    assert text.startswith("flow 'sales', node 'orders', file 'bad.csv', column 'v': ")
    assert message in text and "ChangeDataType" in text


def test_the_row_of_a_bad_value_in_a_later_chunk_counts_from_the_file_start(files: FilesResource) -> None:
    pd.DataFrame({"v": ["1", "2", "3", "x"]}).to_csv(Path(files.data_dir) / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"'x' \(row 4\)"):
        run_node(
            "FileInput",
            {"path": "bad.csv", "columns": {"v": "integer"}, "chunksize": 2, "stream": True},
            {},
            make_ctx(resources={"files": files}),
        ).collect()


def test_zoned_values_with_different_offsets_become_utc() -> None:
    out = convert_column(pd.Series(["2024-01-01T00:00+01:00", "2024-06-01T00:00+02:00"]), "datetime", "here")
    assert str(out.dtype).endswith(", UTC]")
    assert out.tolist() == [pd.Timestamp("2023-12-31T23:00Z"), pd.Timestamp("2024-05-31T22:00Z")]


SCALARS = st.one_of(
    st.none(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["", " 1 ", "1e3", "yes", "N", "2024-01-31", "07:00"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["integer", "float", "string", "boolean", "datetime", "date"]),
    values=st.lists(SCALARS, max_size=6),
)
def test_any_column_converts_to_its_declared_dtype_or_fails_naming_the_value(kind: str, values: list[Any]) -> None:
    """Property: whatever a file holds, a declared column comes back in the declared dtype with its
    nulls kept, or the read fails with a ValueError naming the column; never another dtype."""
    series = pd.Series(values, dtype=object)
    try:
        out = convert_column(series, kind, "flow 'f', node 'n', column 'c'")
    except ValueError as exc:
        assert str(exc).startswith("flow 'f', node 'n', column 'c': ")
        return
    assert len(out) == len(series)
    expected = {"integer": "Int64", "float": "float64", "string": "str", "boolean": "boolean"}.get(kind)
    if expected:
        assert str(out.dtype) == expected
    elif kind == "datetime":
        assert pd.api.types.is_datetime64_any_dtype(out.dtype)
    else:
        assert out.dtype == object and all(pd.isna(v) or type(v).__name__ == "date" for v in out)
    # a null stays null, and only blank text becomes one (kept as it is by 'string')
    blank = series.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    nulls = series.isna() if kind == "string" else series.isna() | blank
    assert out.isna().tolist() == nulls.tolist()
