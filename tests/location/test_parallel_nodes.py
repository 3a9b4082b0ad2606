"""Independent nodes of a step run at the same time (issue 20), bounded by
``policies.max_parallel_nodes``, with the same per-node events, retries, timeouts and failure
rules as one after another.

Concurrency is shown, not timed: ``Meet`` nodes wait at a shared barrier, which they pass only
if the given number of them run at once (the barrier's timeout only ends a broken case).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NO_INPUTS, NodeType, Params
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec

pytestmark = pytest.mark.e2e

FLOW = "parallel_flow"
BARRIERS: dict[str, threading.Barrier] = {}
ACTIVE = {"now": 0, "most": 0}
ACTIVE_LOCK = threading.Lock()
ATTEMPTS: dict[str, int] = {}


class MeetParams(Params):
    group: str
    parties: int
    wait: float = 30.0
    value: int = 0
    fail_first: bool = False


def meet_node(ctx, params, inputs):
    """Waits until ``parties`` nodes of its group are running, then returns one row."""
    key = f"{ctx.run_id}:{ctx.node_id}"
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if params.fail_first and ATTEMPTS[key] == 1:
        raise RuntimeError("first attempt fails")
    with ACTIVE_LOCK:
        ACTIVE["now"] += 1
        ACTIVE["most"] = max(ACTIVE["most"], ACTIVE["now"])
        barrier = BARRIERS.setdefault(f"{ctx.run_id}:{params.group}", threading.Barrier(params.parties))
    try:
        ctx.log.info(f"node '{ctx.node_id}' met its group")
        barrier.wait(timeout=params.wait)
    finally:
        with ACTIVE_LOCK:
            ACTIVE["now"] -= 1
    return pd.DataFrame({"source": [ctx.node_id], "value": [params.value]})


class SleepParams(Params):
    seconds: float


def sleep_node(ctx, params, inputs):
    time.sleep(params.seconds)
    return pd.DataFrame({"slept": [params.seconds]})


CATALOG = default_catalog().extended(
    [
        NodeType("Meet", MeetParams, meet_node, "source", inputs=NO_INPUTS),
        NodeType("Sleep", SleepParams, sleep_node, "source", inputs=NO_INPUTS),
    ]
)


def meet(node_id: str, parties: int, value: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "Meet", "params": {"group": "g", "parties": parties, "value": value, **extra}}


def run(spec: dict[str, Any], tmp_path: Path) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, CATALOG), CATALOG),
        dg.Definitions(resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io"))}),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def(FLOW).execute_in_process(instance=instance, raise_on_error=False)
    return result, instance


def log_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def materialised(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.asset_key.path[-1]: event.materialization.metadata for event in result.get_asset_materialization_events()
    }


def test_four_independent_sources_run_at_once_with_their_own_events(tmp_path):
    sources = [meet(f"s{i}", parties=4, value=i) for i in range(4)]
    union = {"id": "all", "type": "UnionConcatenate", "inputs": [f"s{i}" for i in range(4)], "params": {}}
    result, instance = run({"id": FLOW, "policies": {"max_parallel_nodes": 4}, "nodes": [*sources, union]}, tmp_path)
    assert result.success
    done = materialised(result)
    assert set(done) == {"s0", "s1", "s2", "s3", "all"}
    assert all("dp/duration_ms" in done[node] and "dp/started_at" in done[node] for node in done)
    lines = log_lines(instance, result.run_id)
    for i in range(4):
        assert f"node 's{i}' met its group" in lines  # logged in a thread, forwarded to the run
        assert any(line.startswith(f"node 's{i}' (Meet) finished in") for line in lines)
    expected = pd.concat([pd.DataFrame({"source": [f"s{i}"], "value": [i]}) for i in range(4)], ignore_index=True)
    value = result.output_for_node(f"{FLOW}__step", "all")
    pd.testing.assert_frame_equal(value.sort_values("source").reset_index(drop=True), expected)


def test_the_limit_bounds_how_many_run_at_once(tmp_path):
    ACTIVE["most"] = 0
    nodes = [meet(f"s{i}", parties=2) for i in range(4)]
    result, _ = run({"id": FLOW, "policies": {"max_parallel_nodes": 2}, "nodes": nodes}, tmp_path)
    assert result.success
    assert ACTIVE["most"] == 2


def test_a_limit_of_one_runs_them_one_after_another(tmp_path):
    nodes = [meet(f"s{i}", parties=2, wait=1) for i in range(2)]
    result, instance = run({"id": FLOW, "policies": {"max_parallel_nodes": 1}, "nodes": nodes}, tmp_path)
    assert not result.success
    assert "BrokenBarrierError" in " ".join(log_lines(instance, result.run_id))


def test_a_failed_branch_skips_only_its_downstream(tmp_path):
    nodes = [
        meet("good_a", parties=2),
        meet("good_b", parties=2),
        {"id": "bad", "type": "Meet", "params": {"group": "alone", "parties": 2, "wait": 0.5}},
        {"id": "after_bad", "type": "SortData", "inputs": ["bad"], "params": {"by": "value"}},
        {"id": "after_good", "type": "UnionConcatenate", "inputs": ["good_a", "good_b"], "params": {}},
    ]
    result, _ = run({"id": FLOW, "nodes": nodes}, tmp_path)
    assert not result.success
    assert set(materialised(result)) == {"good_a", "good_b", "after_good"}
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    text = str(failure.step_failure_data.error)
    assert "node 'bad' (Meet) failed" in text and "skipped because of it: after_bad" in text


def test_a_node_in_a_thread_is_retried_and_a_timeout_still_stops_a_node(tmp_path):
    nodes = [
        {**meet("flaky", parties=2, fail_first=True), "retry": {"max_retries": 1}},
        meet("steady", parties=2),
        {"id": "slow", "type": "Sleep", "params": {"seconds": 60}, "timeout_seconds": 1},
    ]
    result, instance = run({"id": FLOW, "nodes": nodes}, tmp_path)
    assert set(materialised(result)) == {"flaky", "steady"}
    lines = " ".join(log_lines(instance, result.run_id))
    assert "node 'flaky' attempt 1 failed (RuntimeError: first attempt fails)" in lines
    assert "timeout_seconds=1" in lines


def test_a_sub_chain_whose_body_forks_for_a_timeout_runs_alone():
    """A forked child inherits every thread's half-held locks: a body node with a timeout makes
    its ForEach run on the step's thread with no other node running, as a timed node does."""
    from dp_assets.compiler.plan import build_plan
    from dp_assets.compiler.scheduler import must_run_alone

    body = [{"id": "cast", "type": "SortData", "params": {"by": "value"}, "timeout_seconds": 5}]
    nodes = [
        meet("src", parties=1),
        {"id": "each", "type": "ForEach", "inputs": ["src"], "params": {"body": body}},
        {"id": "plain", "type": "SortData", "inputs": ["src"], "params": {"by": "value"}},
    ]
    plan = build_plan(validate_spec({"id": FLOW, "nodes": nodes}, CATALOG), CATALOG)
    assert must_run_alone(plan.node("each")) and not must_run_alone(plan.node("plain"))


def test_a_node_in_a_thread_sees_the_settings_in_force_on_the_step(tmp_path):
    """``dp_settings.using`` is a context variable: a node's thread runs in a copy of the step's."""
    from dp_assets.compiler import scheduler
    from dp_settings import current, load, using

    settings = load({"DP_HOME": str(tmp_path)})
    with using(settings):
        on_the_step = current()
        in_a_thread = scheduler.start(current, "settings_reader").result(timeout=60)
    assert on_the_step is settings and in_a_thread is settings
