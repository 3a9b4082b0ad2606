"""Node policies inside a flow's step: retries with backoff, hard timeouts, on_error, step modes."""

from __future__ import annotations

import os
import random
import re
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NO_INPUTS, ONE_INPUT, NodeType, Params
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.compiler.runtime import retry_delay
from dp_assets.spec.model import RetrySpec
from dp_assets.spec.validation import validate_spec
from dp_resources.files import FilesResource


class SleepParams(Params):
    seconds: float
    marker: str = ""


def sleep_node(ctx, params, inputs):
    """Sleep, then pass the input on (a stand-in for a slow node)."""
    if params.marker:
        Path(params.marker).write_text(str(os.getpid()))
    time.sleep(params.seconds)
    return inputs.get("input", pd.DataFrame({"slept": [params.seconds]}))


class FlakyParams(Params):
    counter: str
    fail_times: int


def flaky_node(ctx, params, inputs):
    """Fail the first ``fail_times`` calls (counted in a file), then return the input."""
    path = Path(params.counter)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= params.fail_times:
        raise ConnectionError(f"transient failure {calls}")
    return inputs["input"].assign(calls=calls)


TEST_CATALOG = default_catalog().extended(
    [
        NodeType("Sleep", SleepParams, sleep_node, "transform", inputs=ONE_INPUT),
        NodeType("SleepSource", SleepParams, sleep_node, "source", inputs=NO_INPUTS),
        NodeType("Flaky", FlakyParams, flaky_node, "transform"),
    ]
)


def run_flow(spec, tmp_path, **run_kwargs):
    validated = validate_spec(spec, TEST_CATALOG)
    defs = dg.Definitions.merge(
        build_flow_definitions(validated, TEST_CATALOG),
        dg.Definitions(
            resources={
                "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")),
                "files": FilesResource(data_dir=str(tmp_path / "data")),
            }
        ),
    )
    job = defs.resolve_job_def(spec["id"])
    instance = run_kwargs.pop("instance", None) or dg.DagsterInstance.ephemeral()
    return job, job.execute_in_process(instance=instance, raise_on_error=False, **run_kwargs)


SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": [{"x": 1}, {"x": 2}]}}


def test_E7_node_retries_then_succeeds(tmp_path):
    counter = tmp_path / "calls"
    spec = {
        "id": "retrying",
        "nodes": [
            SOURCE,
            {
                "id": "flaky",
                "type": "Flaky",
                "inputs": ["src"],
                "params": {"counter": str(counter), "fail_times": 2},
                "retry": {"max_retries": 3, "delay": 0.01, "backoff": "exponential"},
            },
        ],
    }
    _, result = run_flow(spec, tmp_path)
    assert result.success
    assert counter.read_text() == "3"  # two failures, one success: the upstream ran once
    assert result.output_for_node("retrying__step", "flaky")["calls"].tolist() == [3, 3]


def test_E7_retries_are_bounded_and_the_error_names_the_node(tmp_path):
    counter = tmp_path / "calls"
    spec = {
        "id": "exhausted",
        "policies": {"retry": {"max_retries": 1}},
        "nodes": [
            SOURCE,
            {"id": "flaky", "type": "Flaky", "inputs": ["src"], "params": {"counter": str(counter), "fail_times": 5}},
        ],
    }
    _, result = run_flow(spec, tmp_path)
    assert not result.success
    assert counter.read_text() == "2"  # the flow default: one retry
    message = result.get_step_failure_events()[0].step_failure_data.error.cause.message
    assert "flow 'exhausted', node 'flaky' (Flaky) failed after 2 attempts: ConnectionError" in message


def test_E7_a_node_waits_between_retries_as_dagster_s_exponential_backoff(tmp_path):
    """Dagster's exponential backoff: 1, 3, 7 times the delay (not 1, 2, 4), as logged."""
    counter = tmp_path / "calls"
    spec = {
        "id": "backing_off",
        "nodes": [
            SOURCE,
            {
                "id": "flaky",
                "type": "Flaky",
                "inputs": ["src"],
                "params": {"counter": str(counter), "fail_times": 3},
                "retry": {"max_retries": 3, "delay": 0.01, "backoff": "exponential"},
            },
        ],
    }
    instance = dg.DagsterInstance.ephemeral()
    _, result = run_flow(spec, tmp_path, instance=instance)
    assert result.success
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    waits = [m.group(1) for m in map(re.compile(r"retrying in (\S+)s").search, messages) if m]
    assert waits == ["0.01", "0.03", "0.07"]


BACKOFFS = {"linear": dg.Backoff.LINEAR, "exponential": dg.Backoff.EXPONENTIAL}
JITTERS = {"none": None, "full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS}


@pytest.mark.parametrize("jitter", JITTERS)
@pytest.mark.parametrize("backoff", BACKOFFS)
def test_E7_node_retry_waits_are_what_dagster_s_retry_policy_waits(backoff, jitter):
    """For every backoff and jitter, retries 1..6: a node's wait is the one Dagster computes for
    an op's RetryPolicy of the same settings (the same random draws, with the same seed)."""
    retry = RetrySpec(max_retries=6, delay=1.5, backoff=backoff, jitter=jitter)
    policy = dg.RetryPolicy(max_retries=6, delay=1.5, backoff=BACKOFFS[backoff], jitter=JITTERS[jitter])
    for number in range(1, 7):
        random.seed(number)
        ours = retry_delay(retry, number)
        random.seed(number)
        assert ours == policy.calculate_delay(number), (backoff, jitter, number)


@pytest.mark.parametrize(
    ("backoff", "multiples"),
    [
        pytest.param("exponential", [1, 3, 7, 15, 31, 63], id="E7-exponential"),
        pytest.param("linear", [1, 2, 3, 4, 5, 6], id="E7-linear"),
    ],
)
def test_E7_backoff_multiplies_the_delay_as_dagster_documents(backoff, multiples):
    """Dagster's Backoff: LINEAR ``n * delay``, EXPONENTIAL ``(2^n - 1) * delay`` for retry n
    (fails if a Dagster upgrade changes the waits users were promised)."""
    retry = RetrySpec(max_retries=6, delay=2.0, backoff=backoff)
    assert [retry_delay(retry, number) for number in range(1, 7)] == [2.0 * m for m in multiples]


def test_E7_jitter_stays_within_dagster_s_bounds():
    """FULL: between 0 and the backoff delay; PLUS_MINUS: the backoff delay +/- the delay."""
    random.seed(3)
    full = RetrySpec(max_retries=4, delay=1.0, jitter="full")
    pm = RetrySpec(max_retries=4, delay=1.0, jitter="plus_minus")
    for number in range(1, 5):
        base = 2.0**number - 1
        samples = [retry_delay(full, number) for _ in range(200)]
        assert min(samples) >= 0 and max(samples) <= base and len(set(samples)) > 100
        samples = [retry_delay(pm, number) for _ in range(200)]
        assert base - 1.0 <= min(samples) and max(samples) <= base + 1.0 and len(set(samples)) > 100


def test_an_unselected_upstream_needs_an_io_manager_that_reads_latest_values(tmp_path):
    """Outside dp_io's contract (here Dagster's filesystem IO manager) a run of a subset cannot
    read an unselected upstream's latest value: it fails naming the node and the IO manager."""
    doubled = {
        "id": "doubled",
        "type": "AddModifyColumn",
        "inputs": ["src"],
        "params": {"column": "y", "expression": "x * 2"},
    }
    spec = {"id": "subset", "nodes": [SOURCE, doubled]}
    _, result = run_flow(spec, tmp_path, asset_selection=[dg.AssetKey(["subset", "doubled"])])
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.cause.message
    assert (
        "'src' is not selected in this run and its IO manager (PickledObjectFilesystemIOManager) "
        "cannot read an asset's latest value" in message
    )


def test_hard_timeout_stops_the_node(tmp_path):
    marker = tmp_path / "pid"
    spec = {
        "id": "slow",
        "nodes": [
            SOURCE,
            {
                "id": "stuck",
                "type": "Sleep",
                "inputs": ["src"],
                "timeout_seconds": 1,
                "params": {"seconds": 600, "marker": str(marker)},
            },
        ],
    }
    started = time.monotonic()
    _, result = run_flow(spec, tmp_path)
    assert not result.success and time.monotonic() - started < 60
    message = result.get_step_failure_events()[0].step_failure_data.error.cause.message
    assert "was stopped after its timeout_seconds=1" in message
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the node's process is really gone


def test_on_error_continue_skips_dependants_and_the_run_succeeds(tmp_path):
    counter = tmp_path / "calls"
    spec = {
        "id": "failsafe",
        "nodes": [
            SOURCE,
            {
                "id": "flaky",
                "type": "Flaky",
                "inputs": ["src"],
                "on_error": "continue",
                "params": {"counter": str(counter), "fail_times": 9},
            },
            {"id": "after_flaky", "type": "SortData", "inputs": ["flaky"], "params": {"by": "x"}},
            {"id": "independent", "type": "SortData", "inputs": ["src"], "params": {"by": "x", "ascending": False}},
        ],
    }
    _, result = run_flow(spec, tmp_path)
    assert result.success
    materialised = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialised == {"src", "independent"}


def test_steps_per_node_gives_a_step_per_node_with_the_same_result(tmp_path):
    nodes = [
        SOURCE,
        {"id": "a", "type": "SortData", "inputs": ["src"], "params": {"by": "x", "ascending": False}},
        {"id": "b", "type": "SelectColumns", "inputs": ["a"], "params": {"columns": ["x"]}},
    ]
    job_one, one = run_flow({"id": "fused", "nodes": nodes}, tmp_path / "one")
    job_many, many = run_flow({"id": "split", "policies": {"steps": "node"}, "nodes": nodes}, tmp_path / "many")
    assert one.success and many.success
    assert [n.name for n in job_one.nodes] == ["fused__step"]
    assert sorted(n.name for n in job_many.nodes) == ["split__node__a", "split__node__b", "split__node__src"]
    pd.testing.assert_frame_equal(one.output_for_node("fused__step", "b"), many.output_for_node("split__node__b", "b"))


def test_declared_columns_become_asset_checks(tmp_path):
    spec = {
        "id": "contracts",
        "nodes": [
            {
                "id": "src",
                "type": "StaticData",
                "params": {"rows": [{"x": 1, "k": "a"}, {"x": 1, "k": None}]},
                "columns": [{"name": "x", "type": "integer", "nullable": False}],
            },
            {
                "id": "bad",
                "type": "SortData",
                "inputs": ["src"],
                "params": {"by": "x"},
                "columns": [
                    {"name": "x", "unique": True},
                    {"name": "k", "nullable": False},
                    {"name": "missing"},
                    {"name": "k", "type": "float"},
                ],
            },
        ],
    }
    _, result = run_flow(spec, tmp_path)
    assert result.success  # a failed check is reported, it does not fail the run
    checks = {
        e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations() if e.check_name == "columns_contract"
    }
    assert checks["src"].passed
    assert not checks["bad"].passed
    problems = checks["bad"].metadata["problems"].value
    assert problems.splitlines() == [
        "- column 'x' has 1 duplicate(s)",
        "- column 'k' has 1 null(s)",
        "- column 'missing' is missing",
        "- column 'k' is string, declared float",
    ]
