"""The warm run launcher on real processes: a webserver (which launches runs), the daemon (run
monitoring) and the templates they start, over the embedded default's storage, serving a small
code location written to a temporary folder so that its code can change under the launcher.

Runs are launched as in production: queued, then launched by the daemon's run-queue loop.

What a user relies on: a run executes in a child of a preloaded template, as a Dagster run;
changed code is never run by an old template; runs queued while a template loads start at once
(cold, each in a process of its own) and succeed; a run whose worker is killed ends FAILURE (run
monitoring, through the launcher's health check) and the next run works; a full pool starts the
run cold; terminate ends the run CANCELED.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterRunStatus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_instance.warm_launcher import WORKER_TAG
from dp_instance.warm_pool import TemplatePool, WarmStartError
from tests.support import warm
from tests.support.dagster_processes import DagsterPlatform, warm_launcher_platform
from tests.support.processes import pid_alive, wait_for

pytestmark = [pytest.mark.e2e]

LOCATION_CODE = """
import os
import time

import dagster as dg

VERSION = "{version}"
PREPARED_IN = None
# While this file exists, a template's load does not finish (a test holds a template cold).
HOLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hold")


def prepare_run_worker():
    global PREPARED_IN
    deadline = time.time() + 900
    while os.path.exists(HOLD) and time.time() < deadline:
        time.sleep(0.1)
    PREPARED_IN = os.getpid()


@dg.op(config_schema={{"out": str}})
def report(context):
    with open(context.op_config["out"], "w") as out:
        out.write(f"{{VERSION}} {{os.getpid()}} prepared in {{PREPARED_IN}}")


@dg.op(config_schema={{"flag": str}})
def wait_for_flag(context):
    deadline = time.time() + 300
    while not os.path.exists(context.op_config["flag"]) and time.time() < deadline:
        time.sleep(0.1)


@dg.job
def quick():
    report()


@dg.job
def slow():
    wait_for_flag()


defs = dg.Definitions(jobs=[quick, slow], executor=dg.in_process_executor)
"""

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on PythonError { message } }
}"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def write_location(folder: Path, version: str) -> Path:
    path = folder / "warm_location.py"
    path.write_text(LOCATION_CODE.format(version=version))
    return path


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp("warm")
    code = root / "code"
    code.mkdir()
    location = write_location(code, "v1")
    platform = warm_launcher_platform(
        root,
        location,
        max_workers=1,  # one worker, so that a second run at once finds the pool full
        # Production's path: runs are queued, and the daemon's run-queue loop launches them.
        run_coordinator={
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"dequeue_interval_seconds": 1},
        },
    )
    platform.start(daemon=True)
    try:
        # The first run starts the template (and itself starts cold).
        run_quick(platform, root, "warming")
        ready_template(platform)
        yield platform
    finally:
        platform.stop()
        for template in _templates(platform):
            _kill(template)


def _templates(platform: DagsterPlatform) -> set[int]:
    """The templates runs were forked from (a cold worker's tag names template 0: none)."""
    with platform.instance() as instance:
        tagged = [json.loads(run.tags[WORKER_TAG]) for run in instance.get_runs() if WORKER_TAG in run.tags]
    return {worker["template"] for worker in tagged if worker["template"] > 0}


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _location_name(platform: DagsterPlatform) -> str:
    return platform.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"][0]["name"]


def launch(platform: DagsterPlatform, job: str, config: dict) -> str:
    location = _location_name(platform)
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job},
        "runConfigData": {"ops": config},
    }
    answer = platform.graphql(LAUNCH, {"params": params})["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def wait_run(platform: DagsterPlatform, run_id: str):
    def finished():
        with platform.instance() as instance:
            run = instance.get_run_by_id(run_id)
            return run if run is not None and run.status in FINISHED else None

    return wait_for(f"run {run_id} to finish", finished, timeout=300, on_timeout=platform.logs)


def worker_of(platform: DagsterPlatform, run_id: str) -> dict:
    def tagged():
        with platform.instance() as instance:
            run = instance.get_run_by_id(run_id)
            return json.loads(run.tags[WORKER_TAG]) if run is not None and WORKER_TAG in run.tags else None

    return wait_for(f"run {run_id} tagged with its warm worker", tagged, timeout=300, on_timeout=platform.logs)


def started(platform: DagsterPlatform, run_id: str) -> None:
    def going():
        with platform.instance() as instance:
            run = instance.get_run_by_id(run_id)
            return run is not None and run.status == DagsterRunStatus.STARTED

    wait_for(f"run {run_id} started", going, timeout=300, on_timeout=platform.logs)


def messages(platform: DagsterPlatform, run_id: str) -> str:
    with platform.instance() as instance:
        return "\n".join(
            f"{r.event_log_entry.user_message} {r.event_log_entry.dagster_event.message if r.event_log_entry.dagster_event else ''}"
            for r in instance.get_records_for_run(run_id).records
        )


def ready_template(platform: DagsterPlatform, other_than: int | None = None) -> tuple[int, str]:
    """Wait for a live, ready template of this platform (not ``other_than``): its pid and socket."""
    return wait_for(
        "a ready warm template",
        lambda: warm.ready_template(platform.dagster_home, other_than),
        timeout=300,
        on_timeout=platform.logs,
    )


def run_quick(platform: DagsterPlatform, tmp_path: Path, name: str = "out") -> tuple[str, str, dict | None]:
    out = tmp_path / name
    run_id = launch(platform, "quick", {"report": {"config": {"out": str(out)}}})
    run = wait_run(platform, run_id)
    assert run.status == DagsterRunStatus.SUCCESS, messages(platform, run_id)
    worker = json.loads(run.tags[WORKER_TAG]) if WORKER_TAG in run.tags else None
    return run_id, out.read_text(), worker


def test_runs_execute_in_children_of_one_preloaded_template(platform: DagsterPlatform, tmp_path: Path) -> None:
    first_id, first_out, first = run_quick(platform, tmp_path, "first")
    _second_id, second_out, second = run_quick(platform, tmp_path, "second")
    assert first is not None and second is not None
    # The op ran in the worker the run is tagged with; both workers came from one template,
    # which ran the location's prepare_run_worker once before forking them.
    assert first_out == f"v1 {first['pid']} prepared in {first['template']}"
    assert second_out == f"v1 {second['pid']} prepared in {second['template']}"
    assert first["template"] == second["template"] and first["pid"] != second["pid"]
    # As a run worker started by Dagster: the worker reports its process in the run's events.
    assert f"Started process for run (pid: {first['pid']})" in messages(platform, first_id)
    assert not pid_alive(first["pid"]) and pid_alive(first["template"])


def test_changed_code_is_never_run_by_an_old_template(platform: DagsterPlatform, tmp_path: Path) -> None:
    _, _, before = run_quick(platform, tmp_path, "before")
    assert before is not None
    write_location(Path(platform.root / "code"), "v2")
    platform.reload_location(_location_name(platform))
    # The old template answers "stale" and exits; the run starts cold (a process of its own),
    # on the new code, while a new template loads it.
    run_id, out, worker = run_quick(platform, tmp_path, "meanwhile")
    assert worker is not None and worker["cold"] and worker["template"] == 0
    assert out == f"v2 {worker['pid']} prepared in None"
    assert "code changed since the template loaded it" in messages(platform, run_id)
    wait_for("the stale template to exit", lambda: not pid_alive(before["template"]))
    ready_template(platform, other_than=before["template"])
    _, out, after = run_quick(platform, tmp_path, "after")
    assert after is not None
    assert out == f"v2 {after['pid']} prepared in {after['template']}"
    assert after["template"] != before["template"]


def test_runs_queued_while_a_template_loads_start_at_once_and_succeed(
    platform: DagsterPlatform, tmp_path: Path
) -> None:
    """The daemon launches queued runs one after another: a launch that waited for a template's
    load (tens of seconds on a loaded machine) held back every run behind it. Here the new
    template's load is held until every run launched meanwhile has finished: they all started
    cold, each in a process of its own, and succeeded; once the template is ready, runs are warm
    again."""
    code = Path(platform.root / "code")
    old, _ = ready_template(platform)
    hold = code / "hold"
    hold.touch()
    try:
        write_location(code, "v3")
        platform.reload_location(_location_name(platform))
        outs = [tmp_path / f"meanwhile_{n}" for n in range(3)]
        run_ids = [launch(platform, "quick", {"report": {"config": {"out": str(out)}}}) for out in outs]
        runs = [wait_run(platform, run_id) for run_id in run_ids]
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS] * 3, [messages(platform, r) for r in run_ids]
        workers = [json.loads(run.tags[WORKER_TAG]) for run in runs]
        assert all(worker["cold"] for worker in workers)
        assert [out.read_text() for out in outs] == [f"v3 {worker['pid']} prepared in None" for worker in workers]
        said = "\n".join(messages(platform, run_id) for run_id in run_ids)
        assert "started a warm template" in said and "is loading the code location" in said, said
        # Still loading: none of these runs waited for it.
        loading = json.loads(next((platform.dagster_home / "warm").glob("*.starting")).read_text())
        assert pid_alive(loading["pid"]) and loading["pid"] != old
    finally:
        hold.unlink()
    assert ready_template(platform, other_than=old)[0] == loading["pid"]
    _, out, worker = run_quick(platform, tmp_path, "warm_again")
    assert worker is not None and worker["template"] == loading["pid"]
    assert out == f"v3 {worker['pid']} prepared in {loading['pid']}"


def test_a_worker_killed_mid_run_fails_the_run_and_the_next_run_works(
    platform: DagsterPlatform, tmp_path: Path
) -> None:
    """F2 with the warm launcher: ``kill -9`` of the run worker; run monitoring (the launcher's
    health check) fails the run; the template is unharmed and serves the next run."""
    run_id = launch(platform, "slow", {"wait_for_flag": {"config": {"flag": str(tmp_path / "never")}}})
    started(platform, run_id)
    worker = worker_of(platform, run_id)
    os.kill(worker["pid"], signal.SIGKILL)
    run = wait_run(platform, run_id)
    assert run.status == DagsterRunStatus.FAILURE
    assert f"the warm run worker (pid {worker['pid']}) is gone" in messages(platform, run_id)
    _, _, after = run_quick(platform, tmp_path)
    assert after is not None and after["template"] == worker["template"]


def test_a_full_pool_starts_the_run_cold(platform: DagsterPlatform, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    holding = launch(platform, "slow", {"wait_for_flag": {"config": {"flag": str(flag)}}})
    worker_of(platform, holding)
    try:
        run_id, out, worker = run_quick(platform, tmp_path)
    finally:
        flag.touch()
    assert worker is not None and worker["cold"]  # a process of its own, not a template's child
    assert "all 1 warm run workers are busy" in messages(platform, run_id)
    assert out.startswith("v")
    assert wait_run(platform, holding).status == DagsterRunStatus.SUCCESS


def test_terminate_ends_the_run_canceled(platform: DagsterPlatform, tmp_path: Path) -> None:
    run_id = launch(platform, "slow", {"wait_for_flag": {"config": {"flag": str(tmp_path / "never")}}})
    started(platform, run_id)
    worker = worker_of(platform, run_id)
    answer = platform.graphql(TERMINATE, {"runId": run_id})["terminateRun"]
    assert answer["__typename"] == "TerminateRunSuccess", answer
    run = wait_run(platform, run_id)
    assert run.status == DagsterRunStatus.CANCELED, messages(platform, run_id)
    wait_for("the cancelled worker to exit", lambda: not pid_alive(worker["pid"]))
    with platform.instance() as instance:
        types = {r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(run_id).records}
    assert DagsterEventType.RUN_CANCELED in types


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300).filter(lambda raw: b"\n" not in raw[:-1]))
def test_the_template_answers_any_malformed_request_and_keeps_serving(platform: DagsterPlatform, raw: bytes) -> None:
    """Invariant: whatever line reaches the template's socket that is not a run request, the
    template answers with an error (or closes), forks nothing, and stays up."""
    template = _live_template(platform)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(template)
        conn.sendall(raw + b"\n")
        answer = conn.makefile("rb").readline()
    try:
        parsed = json.loads(answer)
    except ValueError:
        parsed = None
    is_run_request = _is_run_request(raw)
    if not is_run_request:
        assert parsed is None or "pid" not in parsed
    assert Path(template).exists()


def _is_run_request(raw: bytes) -> bool:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "run_id" in parsed


def _live_template(platform: DagsterPlatform) -> str:
    """The socket of a live template of this platform (its log says where it listens)."""
    return ready_template(platform)[1]


def test_the_embedded_default_names_the_warm_launcher_with_run_monitoring(tmp_path: Path) -> None:
    """The file ``dp init-home`` writes launches runs warm and monitors them (a dead worker is
    found only by run monitoring's health check), with room for every run the queue lets through."""
    import dagster as dg

    from dp_assets.cli.home import instance_file_text
    from dp_instance.warm_launcher import WarmRunLauncher

    (tmp_path / "dagster.yaml").write_text(instance_file_text(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, WarmRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        config = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
        assert instance.run_launcher.max_workers >= config["run_coordinator"]["config"]["max_concurrent_runs"]
        # A queued run (invoke, an event's run, a UI Materialize) waits at most a second for launch.
        assert instance.run_coordinator.dequeue_interval_seconds == 1
    production = yaml.safe_load((Path(__file__).parents[2] / "dagster.yaml").read_text())
    assert production["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1
    assert production["run_launcher"]["class"] == "WarmRunLauncher"
    assert production["run_launcher"]["config"]["watch_cancel"] is True
    assert production["run_monitoring"]["enabled"] is True
    limit = production["run_coordinator"]["config"]["max_concurrent_runs"]
    assert production["run_launcher"]["config"]["max_workers"] >= limit


@pytest.mark.parametrize("made_by_someone_else", ["open to all", "a link"])
def test_a_socket_folder_others_could_enter_turns_warm_runs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, made_by_someone_else: str
) -> None:
    """The sockets' folder sits in the shared temporary folder: one made first by someone else
    (open to all, or a link to their folder) is refused, and the launcher falls back."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pool = TemplatePool(tmp_path / "state", max_workers=1, idle_seconds=1, start_timeout_seconds=1)
    folder = tmp_path / f"dp-warm-{os.getuid()}"
    if made_by_someone_else == "a link":
        (tmp_path / "theirs").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "theirs")
    else:
        folder.mkdir()
        folder.chmod(0o777)
    with pytest.raises(WarmStartError, match="not a folder only this user can enter"):
        pool.socket_path("key")
    if folder.is_symlink():
        folder.unlink()
    else:
        folder.rmdir()
    assert pool.socket_path("key") == folder / "key.sock"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
