"""Runs start when they are submitted, unless they must queue (``FlowRunCoordinator``'s
``launch_at_submit``), on real processes: a webserver, the daemon, ``dagster job launch``
processes, the warm run launcher, over the embedded default's storage.

What a user relies on: a launch starts its run at once, with no daemon needed; a run over a limit
queues and starts only when a run ends; launches from several processes at once never exceed
``max_concurrent_runs`` nor a tag limit (counted from each run's events, the time it held a slot);
a per-flow limit holds; a run started at submit can be canceled.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterRunStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.dagster_processes import DagsterPlatform, warm_launcher_platform
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e]

BIN = Path(sys.executable).parent
LOCATION_CODE = """
import os
import time

import dagster as dg


@dg.op
def report():
    pass


@dg.op(config_schema={"flag": str})
def wait_for_flag(context):
    deadline = time.time() + 300
    while not os.path.exists(context.op_config["flag"]) and time.time() < deadline:
        time.sleep(0.05)


@dg.op(config_schema={"seconds": float})
def nap(context):
    time.sleep(context.op_config["seconds"])


@dg.job
def quick():
    report()


@dg.job
def slow():
    wait_for_flag()


@dg.job
def napping():
    nap()


defs = dg.Definitions(jobs=[quick, slow, napping], executor=dg.in_process_executor)
"""
GLOBAL_LIMIT = 2
#: Tag limits: ``lim<N>`` at most N runs at once; ``dp/flow`` one run per flow.
TAG_LIMITS = [{"key": f"lim{n}", "limit": n} for n in (1, 2)] + [
    {"key": "dp/flow", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
]
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
  }
}"""
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on PythonError { message } }
}"""
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
ENDS = {DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp("submit")
    code = root / "code"
    code.mkdir()
    location = code / "submit_location.py"
    location.write_text(LOCATION_CODE)
    platform = warm_launcher_platform(
        root,
        location,
        max_workers=8,
        run_coordinator={
            "module": "dp_instance.run_coordinator",
            "class": "FlowRunCoordinator",
            "config": {
                "max_concurrent_runs": GLOBAL_LIMIT,
                "tag_concurrency_limits": TAG_LIMITS,
                "dequeue_interval_seconds": 1,
                "launch_at_submit": True,
            },
        },
    )
    platform.start(daemon=False)  # the first test shows runs start with no daemon
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def daemon(platform: DagsterPlatform) -> DagsterPlatform:
    platform.start_daemon()
    return platform


def launch(platform: DagsterPlatform, job: str, ops: dict | None = None, tags: dict | None = None) -> tuple[str, str]:
    """``launchRun``: the run's id and its status in the answer."""
    location = platform.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")
    params = {
        "selector": {
            "repositoryLocationName": location["workspaceOrError"]["locationEntries"][0]["name"],
            "repositoryName": "__repository__",
            "jobName": job,
        },
        "runConfigData": {"ops": ops or {}},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    answer = platform.graphql(LAUNCH, {"params": params})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"], answer["run"]["status"]


def run_of(platform: DagsterPlatform, run_id: str):
    with platform.instance() as instance:
        return instance.get_run_by_id(run_id)


def wait_status(platform: DagsterPlatform, run_id: str, statuses: set[DagsterRunStatus], timeout: float = 300):
    def reached():
        run = run_of(platform, run_id)
        return run if run is not None and run.status in statuses else None

    return wait_for(f"run {run_id} in {statuses}", reached, timeout=timeout, on_timeout=platform.logs)


def event_types(platform: DagsterPlatform, run_id: str) -> list[DagsterEventType]:
    with platform.instance() as instance:
        records = instance.get_records_for_run(run_id).records
    return [r.event_log_entry.dagster_event.event_type for r in records if r.event_log_entry.dagster_event]


def slot_intervals(platform: DagsterPlatform, run_ids: list[str]) -> dict[str, tuple[float, float]]:
    """The time each run held a slot: from its last STARTING (one the run was not put back in the
    queue after) to its end event."""
    held = {}
    with platform.instance() as instance:
        for run_id in run_ids:
            start = end = None
            for record in instance.get_records_for_run(run_id).records:
                event = record.event_log_entry
                kind = event.dagster_event.event_type if event.dagster_event else None
                if kind == DagsterEventType.RUN_STARTING:
                    start = event.timestamp
                elif kind == DagsterEventType.RUN_ENQUEUED:
                    start = None
                elif kind in ENDS:
                    end = event.timestamp
            assert start is not None and end is not None, (run_id, start, end)
            held[run_id] = (start, end)
    return held


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    # An end and a start at the same instant: the end first (the slot was free again).
    edges.sort(key=lambda edge: (edge[0], edge[1]))
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def release(flag: Path) -> None:
    flag.write_text("go")


def test_a_run_starts_at_submit_with_no_daemon_running(platform: DagsterPlatform) -> None:
    assert not any(process.name == "daemon" for process in platform.processes), "runs first in this module"
    run_id, status = launch(platform, "quick")
    assert status != "QUEUED"
    run = wait_status(platform, run_id, FINISHED)
    assert run.status == DagsterRunStatus.SUCCESS
    kinds = event_types(platform, run_id)
    assert DagsterEventType.RUN_ENQUEUED not in kinds and DagsterEventType.RUN_STARTING in kinds


def test_over_the_global_limit_a_run_queues_until_one_ends(daemon: DagsterPlatform, tmp_path: Path) -> None:
    flags = [tmp_path / f"flag{i}" for i in range(GLOBAL_LIMIT)]
    holding = [launch(daemon, "slow", {"wait_for_flag": {"config": {"flag": str(f)}}})[0] for f in flags]
    for run_id in holding:
        wait_status(daemon, run_id, {DagsterRunStatus.STARTED})
    waiting, status = launch(daemon, "quick")
    assert status == "QUEUED"
    time.sleep(3)  # three reads of the queue by the daemon: no room, so it stays queued
    assert run_of(daemon, waiting).status == DagsterRunStatus.QUEUED
    release(flags[0])
    assert wait_status(daemon, waiting, FINISHED).status == DagsterRunStatus.SUCCESS
    release(flags[1])
    for run_id in holding:
        assert wait_status(daemon, run_id, FINISHED).status == DagsterRunStatus.SUCCESS
    held = slot_intervals(daemon, [*holding, waiting])
    assert held[waiting][0] >= held[holding[0]][1]
    assert DagsterEventType.RUN_ENQUEUED in event_types(daemon, waiting)


def test_a_flow_limit_holds_while_other_flows_run(daemon: DagsterPlatform, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    first, _ = launch(daemon, "slow", {"wait_for_flag": {"config": {"flag": str(flag)}}}, {"dp/flow": "hold"})
    wait_status(daemon, first, {DagsterRunStatus.STARTED})
    second, status = launch(daemon, "slow", {"wait_for_flag": {"config": {"flag": str(flag)}}}, {"dp/flow": "hold"})
    assert status == "QUEUED"
    # Another flow's run is not held by this flow's limit (it queues behind the waiting run,
    # never overtaking it, and the daemon starts it at its next read).
    other, _ = launch(daemon, "quick", tags={"dp/flow": "other"})
    assert wait_status(daemon, other, FINISHED).status == DagsterRunStatus.SUCCESS
    assert run_of(daemon, second).status == DagsterRunStatus.QUEUED
    release(flag)
    for run_id in (first, second):
        assert wait_status(daemon, run_id, FINISHED).status == DagsterRunStatus.SUCCESS
    held = slot_intervals(daemon, [first, second])
    assert held[second][0] >= held[first][1]


def test_a_run_started_at_submit_can_be_canceled(daemon: DagsterPlatform, tmp_path: Path) -> None:
    run_id, _ = launch(daemon, "slow", {"wait_for_flag": {"config": {"flag": str(tmp_path / "never")}}})
    wait_status(daemon, run_id, {DagsterRunStatus.STARTED})
    assert DagsterEventType.RUN_ENQUEUED not in event_types(daemon, run_id)
    answer = daemon.graphql(TERMINATE, {"runId": run_id})["terminateRun"]
    assert answer["__typename"] == "TerminateRunSuccess", answer
    assert wait_status(daemon, run_id, FINISHED).status == DagsterRunStatus.CANCELED


def _cli_launch(platform: DagsterPlatform, tags: dict, seconds: float) -> subprocess.Popen:
    code = platform.root / "code"
    return subprocess.Popen(
        [
            str(BIN / "dagster"),
            "job",
            "launch",
            "-f",
            str(code / "submit_location.py"),
            "-d",
            str(code),
            "-j",
            "napping",
            "--config-json",
            json.dumps({"ops": {"nap": {"config": {"seconds": seconds}}}}),
            "--tags",
            json.dumps(tags),
        ],
        env=platform.env,
        cwd=platform.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _runs_tagged(platform: DagsterPlatform, key: str, value: str) -> list[str]:
    with platform.instance() as instance:
        return [run.run_id for run in instance.get_runs() if run.tags.get(key) == value]


def _check_limits(platform: DagsterPlatform, run_ids: list[str], limit_key: str | None) -> None:
    for run_id in run_ids:
        assert wait_status(platform, run_id, FINISHED).status == DagsterRunStatus.SUCCESS
    held = slot_intervals(platform, run_ids)
    assert most_at_once(list(held.values())) <= GLOBAL_LIMIT, held
    if limit_key is not None:
        assert most_at_once(list(held.values())) <= int(limit_key.removeprefix("lim")), held


def test_launches_from_several_processes_at_once_never_exceed_the_limits(daemon: DagsterPlatform) -> None:
    """Two ``dagster job launch`` processes and the webserver (three launches) submit runs under
    a tag limit of 1 at once; the daemon starts what queued."""
    tags = {"batch": "processes", "lim1": "x"}
    processes = [_cli_launch(daemon, tags, 1.0) for _ in range(2)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda t: launch(daemon, "napping", {"nap": {"config": {"seconds": 1.0}}}, t), [tags] * 3))
    for process in processes:
        out, _ = process.communicate(timeout=600)
        assert process.returncode == 0, out
    run_ids = _runs_tagged(daemon, "batch", "processes")
    assert len(run_ids) == 5
    _check_limits(daemon, run_ids, "lim1")


BATCHES = iter(range(10**6))


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(launches=st.integers(min_value=2, max_value=5), limit_key=st.sampled_from([None, "lim1", "lim2"]))
def test_concurrent_launches_never_exceed_a_limit(
    daemon: DagsterPlatform, launches: int, limit_key: str | None
) -> None:
    batch = f"threads-{next(BATCHES)}"
    tags = {"batch": batch, **({limit_key: "x"} if limit_key else {})}
    with ThreadPoolExecutor(launches) as pool:
        run_ids = [
            run_id
            for run_id, _ in pool.map(
                lambda _: launch(daemon, "napping", {"nap": {"config": {"seconds": 0.5}}}, tags), range(launches)
            )
        ]
    _check_limits(daemon, run_ids, limit_key)
