"""The warm run launcher with ``template_wait_seconds`` (what ``dp init-home`` writes), on real
processes: while the run's template loads, a run waits in the run queue instead of starting
cold, and starts warm once the template is ready; a run that has waited its time starts cold.

Runs are queued and launched by the daemon's run-queue loop, as in tests/platform/test_warm_launcher.py,
whose code location (with its switch that holds a template's load) this module reuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterRunStatus

from dp_instance.warm_launcher import WAIT_TAG, WORKER_TAG
from tests.platform.test_warm_launcher import (
    FINISHED,
    LAUNCH,
    _kill,
    _location_name,
    _templates,
    messages,
    wait_run,
    write_location,
)
from tests.support import warm
from tests.support.dagster_processes import DagsterPlatform, warm_launcher_platform
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e]

WAITING = "the run waits in the queue for the template"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp("warm_wait")
    code = root / "code"
    code.mkdir()
    write_location(code, "v1")
    platform = warm_launcher_platform(
        root,
        code / "warm_location.py",
        max_workers=4,
        run_coordinator={
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": 1},
        },
        # Longer than a template's load on a loaded machine: the first test's runs must not
        # give up waiting before the template it holds is let go.
        template_wait_seconds=600,
    )
    platform.start(daemon=True)
    try:
        yield platform
    finally:
        (code / "hold").unlink(missing_ok=True)
        platform.stop()
        for template in _templates(platform) | _loading(platform):
            _kill(template)


def _loading(platform: DagsterPlatform) -> set[int]:
    """Templates still loading (the launcher's ``.starting`` notes)."""
    return {json.loads(note.read_text())["pid"] for note in (platform.dagster_home / "warm").glob("*.starting")}


def launch(platform: DagsterPlatform, out: Path, tags: dict[str, str] | None = None) -> str:
    params = {
        "selector": {
            "repositoryLocationName": _location_name(platform),
            "repositoryName": "__repository__",
            "jobName": "quick",
        },
        "runConfigData": {"ops": {"report": {"config": {"out": str(out)}}}},
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    answer = platform.graphql(LAUNCH, {"params": params})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def test_runs_wait_in_the_queue_for_a_loading_template_and_start_warm(
    platform: DagsterPlatform, tmp_path: Path
) -> None:
    """The location's first runs, launched while its template's load is held: each says it waits
    for the template, none starts (no worker, not finished); let go, the template becomes ready
    and every one of them runs in a child of it."""
    hold = platform.root / "code" / "hold"
    hold.touch()
    outs = [tmp_path / f"first_{n}" for n in range(2)]
    run_ids = [launch(platform, out) for out in outs]

    def all_waiting() -> bool:
        return all(WAITING in messages(platform, run_id) for run_id in run_ids)

    wait_for("the runs to wait for the template", all_waiting, timeout=300, on_timeout=platform.logs)
    with platform.instance() as instance:
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
    assert all(run is not None and WORKER_TAG not in run.tags and run.status not in FINISHED for run in runs)
    hold.unlink()
    template, _ = wait_for(
        "the template", lambda: warm.ready_template(platform.dagster_home), timeout=300, on_timeout=platform.logs
    )
    for run_id, out in zip(run_ids, outs, strict=True):
        run = wait_run(platform, run_id)
        assert run.status == DagsterRunStatus.SUCCESS, messages(platform, run_id)
        worker = json.loads(run.tags[WORKER_TAG])
        assert worker["template"] == template and not worker.get("cold")
        assert out.read_text() == f"v1 {worker['pid']} prepared in {template}"
        assert WAIT_TAG in run.tags


def test_a_run_that_has_waited_its_time_starts_cold(platform: DagsterPlatform, tmp_path: Path) -> None:
    """A template that does not become ready does not hold runs for ever: a run whose wait began
    ``template_wait_seconds`` ago (its tag says when) starts cold, in a process of its own, and the
    run's events say how long it waited."""
    code = platform.root / "code"
    hold = code / "hold"
    hold.touch()
    try:
        write_location(code, "v2")  # the ready template is stale: the next run starts a new one, held
        out = tmp_path / "late"
        run_id = launch(platform, out, {WAIT_TAG: f"{time.time() - 601:.3f}"})
        run = wait_run(platform, run_id)
        assert run.status == DagsterRunStatus.SUCCESS, messages(platform, run_id)
        worker = json.loads(run.tags[WORKER_TAG])
        assert worker["cold"] and worker["template"] == 0
        assert out.read_text() == f"v2 {worker['pid']} prepared in None"
        said = messages(platform, run_id)
        assert "s in the queue" in said and "a cold start" in said, said
    finally:
        hold.unlink()
