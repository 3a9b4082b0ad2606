"""``dp validate --infer-columns``: file sources' columns read from their files for the checks.

Without it, a flow whose sources declare no ``columns`` passes ``dp validate`` with a misspelt
column downstream and fails its run; with it, the same mistake is a validation error naming the
flow, node and field. What it reads never contradicts the run: the column names are those the
node's own whole read gives, each type that one or ``any``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from dp_assets.catalog.nodes.sources import SCHEMA_MOST_FILES, FileInputParams, file_columns
from dp_assets.catalog.schema import schema_of
from dp_assets.cli import main
from dp_resources.files import FilesResource
from tests.fuzzing import fuzz_settings


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _spec(path: Path, source_path: str, condition: str) -> Path:
    spec = {
        "id": "orders_report",
        "nodes": [
            {"id": "orders", "type": "FileInput", "params": {"path": source_path}},
            {"id": "big", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": condition}},
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["big"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
            },
        ],
    }
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def data(dp_home: Path) -> Path:
    folder = dp_home / "data"
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"region": ["n", "s"], "amount": [1.5, 2.0], "day": pd.to_datetime(["2026-01-01"] * 2)})
    frame.to_parquet(folder / "orders.parquet", index=False)
    frame.to_csv(folder / "orders.csv", index=False)
    return folder


@pytest.mark.parametrize("source", ["orders.parquet", "orders.csv", "orders.*"])
def test_a_misspelt_column_passes_without_the_flag_and_is_named_with_it(data, tmp_path, source):
    spec = _spec(tmp_path / "flow.yaml", source, "amout > 1")
    assert run("validate", str(spec)).exit_code == 0  # the spec alone cannot tell
    result = run("validate", "--infer-columns", str(spec))
    assert result.exit_code == 1
    assert "flow 'orders_report', node 'big', field 'params.condition'" in result.output
    assert "amout" in result.output and "did you mean `amount`" in result.output


def test_the_columns_read_are_listed_and_checked_downstream(data, tmp_path):
    spec = _spec(tmp_path / "flow.yaml", "orders.parquet", "amount > 1")
    result = run("validate", "--infer-columns", "--columns", str(spec))
    assert result.exit_code == 0, result.output
    expected = schema_of(pd.read_parquet(data / "orders.parquet"))
    listed = ", ".join(f"{name} ({kind})" for name, kind in expected.items())
    assert f"orders: {listed}  (read from its files)" in result.output
    assert "totals: region (string), total (float)" in result.output  # propagated through the filter and the group


def test_a_source_it_cannot_read_is_a_warning_and_the_rest_is_checked(data, tmp_path):
    spec = _spec(tmp_path / "flow.yaml", "missing.parquet", "amount > 1")
    result = CliRunner().invoke(main, ["validate", "--infer-columns", str(spec)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "warning: node 'orders': columns not read from its files" in result.output
    assert "missing.parquet" in result.output


def test_a_path_naming_a_param_is_left_to_the_run(data, tmp_path):
    spec = tmp_path / "flow.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "id": "by_param",
                "params": {"file": {"type": "string", "default": "orders.parquet"}},
                "nodes": [
                    {"id": "orders", "type": "FileInput", "params": {"path": "{{ params.file }}"}},
                    {"id": "big", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amout > 1"}},
                ],
            }
        )
    )
    result = run("validate", "--infer-columns", str(spec))
    assert result.exit_code == 0 and "warning" not in result.output


KINDS = {
    "integer": st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=5),
    "float": st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), min_size=1, max_size=5),
    "string": st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=6), min_size=1),
    "boolean": st.lists(st.booleans(), min_size=1, max_size=5),
}
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zl", "Zp"]), min_size=1, max_size=8)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    rows = draw(st.integers(1, 5))
    columns = {}
    for name in names:
        values = draw(KINDS[draw(st.sampled_from(sorted(KINDS)))])
        columns[name] = (values * rows)[:rows]
    return pd.DataFrame(columns)


@fuzz_settings(40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=frames(), suffix=st.sampled_from([".parquet", ".csv"]))
def test_the_columns_read_never_contradict_the_whole_read(tmp_path_factory, frame, suffix):
    """Any frame written as Parquet or CSV: the names read are the node's whole read's, in order,
    and each type is the whole read's or ``any``."""
    root = tmp_path_factory.mktemp("data")
    path = root / f"file{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
        whole = pd.read_parquet(path)
    else:
        frame.to_csv(path, index=False)
        try:
            whole = pd.read_csv(path)
        except pd.errors.ParserError:
            return  # a header pandas itself cannot read: the node reports it
    read = file_columns(FileInputParams(path=path.name), {"files": FilesResource(data_dir=str(root))})
    assert read is not None
    actual = schema_of(whole)
    assert list(read) == list(actual)
    assert all(read[name] in (actual[name], "any") for name in read)
    if suffix == ".parquet":
        assert read == actual  # Parquet says its types: exact


def test_several_files_give_the_union_and_any_where_they_disagree(tmp_path):
    pd.DataFrame({"a": [1], "b": ["x"]}).to_parquet(tmp_path / "one.parquet", index=False)
    pd.DataFrame({"a": ["text"], "c": np.array([1.0])}).to_parquet(tmp_path / "two.parquet", index=False)
    read = file_columns(FileInputParams(path="*.parquet"), {"files": FilesResource(data_dir=str(tmp_path))})
    whole = pd.concat([pd.read_parquet(tmp_path / f) for f in ("one.parquet", "two.parquet")], ignore_index=True)
    assert read is not None and list(read) == list(whole.columns)
    assert read == {"a": "any", "b": "string", "c": "float"}


def test_a_glob_over_too_many_files_is_a_note_not_a_partial_union(tmp_path):
    """A column only the 101st file has would be missing from a partial union, and a check would
    then refuse a column the run has: too many files give no columns at all."""
    for number in range(SCHEMA_MOST_FILES + 1):
        pd.DataFrame({"a": [number]}).to_csv(tmp_path / f"part{number:03}.csv", index=False)
    with pytest.raises(ValueError, match="files match"):
        file_columns(FileInputParams(path="part*.csv"), {"files": FilesResource(data_dir=str(tmp_path))})


def test_a_json_file_is_read_whole_only_up_to_the_limit(tmp_path, monkeypatch):
    from dp_assets.catalog.nodes import sources

    records = pd.DataFrame({"a": range(200), "b": ["x"] * 200})
    records.to_json(tmp_path / "events.json", orient="records")
    files = {"files": FilesResource(data_dir=str(tmp_path))}
    read = file_columns(FileInputParams(path="events.json"), files)
    assert read == schema_of(pd.read_json(tmp_path / "events.json"))
    monkeypatch.setattr(sources, "SCHEMA_WHOLE_READ_BYTES", (tmp_path / "events.json").stat().st_size - 1)
    with pytest.raises(ValueError, match="declare its columns"):
        file_columns(FileInputParams(path="events.json"), files)
