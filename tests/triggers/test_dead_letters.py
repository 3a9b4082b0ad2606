"""Dead letters of a ForEach fan-out: the failed items of a run (error and key) are found on the
run, listed by ``dp retry-failed RUN --dry-run``; a run without failed items is refused."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from click.testing import CliRunner
from triggers_support import compile_flows

from dp_assets.cli import main as dp
from dp_sensors.triggers.dead_letters import failed_items_of

ROWS = [{"k": "a", "s": "1"}, {"k": "b", "s": "x"}, {"k": "c", "s": "3"}, {"k": "d", "s": "y"}]
FAN = {
    "id": "fan",
    "nodes": [
        {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}},
        {
            "id": "each",
            "type": "ForEach",
            "inputs": ["rows"],
            "params": {
                "group_by": "k",
                "body": [{"id": "num", "type": "AddModifyColumn", "params": {"column": "n", "expression": "int(s)"}}],
            },
        },
    ],
}


@pytest.fixture
def home_instance(tmp_path):
    """An instance that ``dg.DagsterInstance.get()`` (the CLI) finds through DAGSTER_HOME."""
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance


def test_failed_items_are_found_on_the_run_and_listed(home_instance):
    result = compile_flows(FAN).resolve_job_def("fan").execute_in_process(instance=home_instance)
    assert result.success  # failed items do not fail the run
    failed = failed_items_of(home_instance, result.run_id)
    assert sorted(item["k"] for item in failed["each"]) == ["b", "d"]
    assert all(item["error_type"] == "ExpressionError" and "int(s)" in item["message"] for item in failed["each"])

    listed = CliRunner().invoke(dp, ["retry-failed", result.run_id, "--dry-run"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert (
        sorted(row["k"] for row in rows) == ["b", "d"]
        and {row["for_each"] for row in rows} == {"each"}
        and {row["node"] for row in rows} == {"num"}
    )


def test_a_run_without_failed_items_is_refused(home_instance):
    clean = {"id": "clean", "nodes": [{"id": "rows", "type": "StaticData", "params": {"rows": ROWS[:1]}}]}
    result = compile_flows(clean).resolve_job_def("clean").execute_in_process(instance=home_instance)
    refused = CliRunner().invoke(dp, ["retry-failed", result.run_id])
    assert refused.exit_code != 0 and "recorded no failed ForEach items" in refused.output
    unknown = CliRunner().invoke(dp, ["retry-failed", "no-such-run"])
    assert unknown.exit_code != 0 and "no run id starts with 'no-such-run'" in unknown.output
