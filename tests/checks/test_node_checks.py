"""A node's ``checks:`` evaluated in real runs of the code location, each result compared with
the same rule computed directly in pandas on the node's output; blocking checks stop the nodes
that read the node in the same run (one step or a step per node); a materialisation whose
columns differ from the asset's column schema is flagged."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from dp_assets.definitions import defs
from tests.checks.conftest import write_flow
from tests.fuzzing import SLOW_CHECKS, fuzz_settings

CHECKS = [
    {"type": "row_count", "min": 2, "max": 5},
    {"type": "not_null", "columns": ["k"]},
    {"type": "unique", "columns": ["id"], "key": ["k", "amount"]},
    {"type": "accepted_values", "column": "k", "values": ["a", "b"]},
    {"type": "expression", "expression": "amount >= 0 and amount < 3", "severity": "warn"},
    {"type": "columns", "columns": {"id": "float", "k": "string", "amount": "integer"}},
]


def oracle(frame: pd.DataFrame) -> dict[str, bool]:
    """Each check's verdict, written directly in pandas."""
    keyed = frame[["k", "amount"]].dropna()
    return {
        "row_count": 2 <= len(frame) <= 5,
        "not_null_k": not frame["k"].isna().any(),
        "unique_id_k_amount": not frame["id"].dropna().duplicated().any() and not keyed.duplicated().any(),
        "accepted_values_k": bool(frame["k"].dropna().isin(["a", "b"]).all()),
        "expression": bool(((frame["amount"] >= 0) & (frame["amount"] < 3)).all()),
        "columns": pd.api.types.is_numeric_dtype(frame["id"])
        and pd.api.types.is_integer_dtype(frame["amount"])
        and (frame["k"].isna().all() or pd.api.types.is_string_dtype(frame["k"])),
    }


def checked(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


rows = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.none() | st.integers(0, 4),
            "k": st.sampled_from(["a", "b", "c", None]),
            "amount": st.integers(-1, 3),
        }
    ),
    min_size=1,
    max_size=7,
)


@fuzz_settings(12, suppress_health_check=[*SLOW_CHECKS, HealthCheck.function_scoped_fixture])
@given(data=rows)
def test_each_check_in_a_real_run_agrees_with_pandas(data, tmp_path_factory, monkeypatch):
    """One flow, the rows as the run's param: every check's result equals pandas' verdict."""
    folder = tmp_path_factory.mktemp("flows")
    home = tmp_path_factory.mktemp("home")
    (home / "dagster").mkdir()
    with monkeypatch.context() as patch:
        patch.setenv("DP_FLOWS_DIR", str(folder))
        patch.setenv("DP_HOME", str(home))
        patch.setenv("DAGSTER_HOME", str(home / "dagster"))
        write_flow(
            folder,
            {
                "id": "checked_rows",
                "params": {"rows": {"type": "list", "default": [{"id": 1, "k": "a", "amount": 1}]}},
                "nodes": [
                    {"id": "src", "type": "StaticData", "params": {"rows": "{{ params.rows }}"}, "checks": CHECKS}
                ],
            },
        )
        job = defs().resolve_job_def("checked_rows")
        result = job.execute_in_process(instance=dg.DagsterInstance.get(), run_config={"rows": data})
    assert result.success  # no check is blocking: a failed check is reported, the run goes on
    frame = pd.DataFrame.from_records(data)
    pd.testing.assert_frame_equal(result.output_for_node("checked_rows__step", "src"), frame)
    found = {name: e.passed for (node, name), e in checked(result).items() if name != "column_schema"}
    assert found == oracle(frame)
    severities = {name: e.severity for (_, name), e in checked(result).items()}
    assert severities["expression"] == dg.AssetCheckSeverity.WARN
    assert severities["row_count"] == dg.AssetCheckSeverity.ERROR


def test_failed_checks_say_what_failed(flows):
    rows_ = [{"id": 1, "k": "a", "amount": 5}, {"id": 1, "k": None, "amount": -1}, {"id": 2, "k": "z", "amount": 0}]
    write_flow(
        flows,
        {"id": "told", "nodes": [{"id": "src", "type": "StaticData", "params": {"rows": rows_}, "checks": CHECKS}]},
    )
    result = defs().resolve_job_def("told").execute_in_process(instance=dg.DagsterInstance.get())
    found = checked(result)
    problems = {name: e.metadata["problems"].value for (_, name), e in found.items() if name != "column_schema"}
    assert problems == {
        "row_count": "none",
        "not_null_k": "- column 'k' has 1 null(s)",
        "unique_id_k_amount": "- column 'id' has 1 duplicate(s), e.g. 1",
        "accepted_values_k": "- column 'k' has 1 value(s) not accepted, e.g. 'z'",
        "expression": "- 2 row(s) where `amount >= 0 and amount < 3` does not hold, e.g. row 0",
        "columns": "none",  # whole numbers fit float
    }
    assert found[("src", "not_null_k")].metadata["failing_rows"].value == 1
    assert found[("src", "expression")].metadata["failing_rows"].value == 2


def blocking_flow(steps: str) -> dict[str, Any]:
    return {
        "id": f"blocked_{steps}",
        "policies": {"steps": steps},
        "nodes": [
            {
                "id": "orders",
                "type": "StaticData",
                "params": {"rows": [{"amount": 3}, {"amount": -1}]},
                "checks": [{"type": "expression", "expression": "amount > 0", "blocking": True}],
            },
            {"id": "by_amount", "type": "SortData", "inputs": ["orders"], "params": {"by": "amount"}},
            {"id": "top", "type": "Limit", "inputs": ["by_amount"], "params": {"n": 1}},
            {"id": "other", "type": "StaticData", "params": {"rows": [{"y": 1}]}},
            {
                "id": "warned",
                "type": "StaticData",
                "params": {"rows": [{"y": None}]},
                "checks": [{"type": "not_null", "columns": ["y"], "blocking": True, "severity": "warn"}],
            },
            {"id": "after_warned", "type": "SortData", "inputs": ["warned"], "params": {"by": "y"}},
        ],
    }


@pytest.mark.parametrize("steps", ["flow", "node"])
def test_a_failed_blocking_check_stops_its_readers_in_the_same_run(flows, steps):
    write_flow(flows, blocking_flow(steps))
    result = (
        defs()
        .resolve_job_def(f"blocked_{steps}")
        .execute_in_process(instance=dg.DagsterInstance.get(), raise_on_error=False)
    )
    assert not result.success  # as Dagster fails the step of a failed blocking check
    materialised = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    # the checked node is stored; what reads it (directly or not) is not; the rest runs, and a
    # blocking check with severity warn blocks nothing
    assert materialised == {"orders", "other", "warned", "after_warned"}
    found = checked(result)
    assert not found[("orders", "expression")].passed
    assert not found[("warned", "not_null_y")].passed
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert f"blocked_{steps}/orders: expression" in failure.event_specific_data.error.message


def test_a_passing_blocking_check_lets_readers_run(flows):
    spec = blocking_flow("flow")
    spec["nodes"][0]["params"]["rows"] = [{"amount": 3}, {"amount": 1}]
    write_flow(flows, spec)
    result = defs().resolve_job_def("blocked_flow").execute_in_process(instance=dg.DagsterInstance.get())
    assert result.success
    assert {"by_amount", "top"} <= {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_a_materialisation_whose_columns_changed_is_flagged(flows):
    """The declared columns are the asset's column schema; the run's frame gains and changes
    columns: the column_schema check (severity warn) lists each change."""
    write_flow(
        flows,
        {
            "id": "drifting",
            "params": {"rows": {"type": "list", "default": [{"id": 1, "name": "a"}]}},
            "nodes": [
                {
                    "id": "src",
                    "type": "StaticData",
                    "params": {"rows": "{{ params.rows }}"},
                    "columns": [{"name": "id", "type": "integer"}, {"name": "name", "type": "string"}],
                }
            ],
        },
    )
    job = defs().resolve_job_def("drifting")
    same = job.execute_in_process(instance=dg.DagsterInstance.get())
    assert checked(same)[("src", "column_schema")].passed
    drifted = job.execute_in_process(
        instance=dg.DagsterInstance.get(), run_config={"rows": [{"id": "x", "name": "a", "extra": 1.5}]}
    )
    found = checked(drifted)[("src", "column_schema")]
    assert not found.passed and found.severity == dg.AssetCheckSeverity.WARN
    assert found.metadata["changes"].value.splitlines() == [
        "- column 'extra' is new (float)",
        "- column 'id' is string, the schema says integer",
    ]


def test_duckdb_outputs_are_checked_and_compared_with_their_schema(flows):
    """A DuckDB node's output (an Arrow table) gets the same verdicts as a frame."""
    rows_ = [{"id": i, "k": "ab"[i % 2]} for i in range(6)]
    write_flow(
        flows,
        {
            "id": "ducked",
            "policies": {"engine": "duckdb"},
            "nodes": [
                {"id": "src", "type": "StaticData", "params": {"rows": rows_}},
                {
                    "id": "sorted",
                    "type": "SortData",
                    "inputs": ["src"],
                    "params": {"by": "id", "ascending": False},
                    "checks": [{"type": "unique", "columns": ["id"]}, {"type": "row_count", "max": 5}],
                    "columns": [{"name": "id", "type": "integer"}, {"name": "k", "type": "string"}],
                },
                {"id": "top", "type": "Limit", "inputs": ["sorted"], "params": {"n": 2}},
            ],
        },
    )
    result = defs().resolve_job_def("ducked").execute_in_process(instance=dg.DagsterInstance.get())
    found = {key: e.passed for key, e in checked(result).items()}
    assert found == {
        ("sorted", "columns_contract"): True,
        ("sorted", "unique_id"): True,
        ("sorted", "row_count"): False,  # 6 rows
        ("sorted", "column_schema"): True,  # the declared columns are the asset's column schema
    }


def test_the_schema_check_reads_a_few_rows_of_an_arrow_table():
    import pyarrow as pa

    from dp_assets.compiler.checks import SAMPLE_ROWS, schema_changes, schema_sample

    table = pa.table({"id": list(range(10_000)), "k": ["a"] * 10_000})
    sample = schema_sample(table)
    assert len(sample) == SAMPLE_ROWS
    schema = dg.TableSchema(columns=[dg.TableColumn("id", "integer"), dg.TableColumn("gone", "string")])
    assert schema_changes(sample, schema) == ["column 'gone' is gone", "column 'k' is new (string)"]
