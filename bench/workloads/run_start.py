"""Workload 7, run start and ``launchRun``.

Run start: a run worker as Dagster starts one, ``dagster api execute_run`` for a run created
beforehand (as the webserver creates it), in a fresh process, timed from process start to the
run's ``STEP_START`` event (read from the instance's event log): with the code location holding
one flow (anchor) and N flows. The difference is what the size of the location costs every run.

``launchRun``: ``dagster-webserver -m dp_assets.definitions`` on loopback over the same N-flow
store, an instance with the ``QueuedRunCoordinator`` (no daemon, so runs queue and the figure is
the webserver's own submit path), and ``launchRun`` posted M times; response time p50/p95.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
QUEUED = """\
run_coordinator:
  module: dagster
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


def _home(store: Path) -> tuple[Path, dict[str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="dp-bench-runstart-"))
    (tmp / "dagster").mkdir()
    db = tmp / "store.db"
    shutil.copy(store, db)
    env = {
        **os.environ,
        "DP_HOME": str(tmp),
        "DAGSTER_HOME": str(tmp / "dagster"),
        "DP_FLOWS_DIR": "",
        "DP_STORE_URL": f"sqlite:///{db}",
        "PYTHONPATH": str(REPO_ROOT),
    }
    for key in ("DP_DATA_DIR", "DP_OUTPUTS_URL", "DP_EXECUTOR"):
        env.pop(key, None)
    return tmp, env


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_worker_start(store: str, flow_id: str) -> dict[str, Any]:
    """Process start -> STEP_START of a run worker: ``dagster api execute_run``, the process a
    run launcher starts for a run created beforehand (as the webserver creates it)."""
    import dagster as dg

    from dp_assets.dagster_internals import run_worker_arguments

    tmp, env = _home(Path(store))
    try:
        (tmp / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with _environment(env), dg.DagsterInstance.get() as instance:
            run, args = run_worker_arguments("dp_assets.definitions", "defs", str(REPO_ROOT), flow_id, instance)
            started_wall = time.time()
            done = subprocess.run(
                [str(BIN / "dagster"), "api", "execute_run", args],
                env=env,
                cwd=tmp,
                capture_output=True,
                check=False,
                text=True,
                timeout=900,
            )
            total = time.time() - started_wall
            finished = instance.get_run_by_id(run.run_id)
            if done.returncode != 0 or finished is None or finished.status != dg.DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"run worker failed: {done.stderr[-2000:]}")
            records = instance.get_records_for_run(run.run_id).records
            step_start = next(
                r.event_log_entry.timestamp
                for r in records
                if r.event_log_entry.dagster_event_type == dg.DagsterEventType.STEP_START
            )
        return {"to_step_start": step_start - started_wall, "total": total}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"


@contextmanager
def _webserver(tmp: Path, env: dict[str, str]) -> Iterator[tuple[Any, str, str, float]]:
    """``dagster-webserver -m dp_assets.definitions`` on loopback: (client, GraphQL URL, location
    name, seconds until it served the location)."""
    import httpx

    from bench.harness import free_port, popen_in_session, stop_groups

    port = free_port()
    log = open(tmp / "webserver.log", "w")  # noqa: SIM115 - the server writes to it until stopped
    started = time.perf_counter()
    server = popen_in_session(
        [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "dp_assets.definitions"],
        env=env,
        cwd=tmp,
        stdout=log,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        with httpx.Client(timeout=120) as client:
            location = None
            deadline = time.time() + 900
            while location is None:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("webserver did not come up: " + (tmp / "webserver.log").read_text()[-2000:])
                try:
                    data = client.post(url, json={"query": LOCATIONS}).json()
                    entries = data["data"]["workspaceOrError"]["locationEntries"]
                    location = entries[0]["name"] if entries else None
                except (httpx.HTTPError, KeyError, TypeError, ValueError):
                    time.sleep(0.5)
            yield client, url, location, time.perf_counter() - started
    finally:
        stop_groups([server], grace_seconds=30)  # the webserver's code server with it
        log.close()


def _launch(client: Any, url: str, location: str, flow_id: str) -> dict[str, Any]:
    params = {
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": flow_id},
        "runConfigData": {},
    }
    return client.post(url, json={"query": LAUNCH, "variables": {"params": params}}).json()


def launch_runs(store: str, flow_ids: list[str], launches: int) -> dict[str, Any]:
    """``launchRun`` response times against a real webserver on loopback."""
    from bench.harness import percentile

    tmp, env = _home(Path(store))
    (tmp / "dagster" / "dagster.yaml").write_text(QUEUED)
    try:
        with _webserver(tmp, env) as (client, url, location, ready):
            times, ok = [], 0
            for i in range(launches):
                t0 = time.perf_counter()
                reply = _launch(client, url, location, flow_ids[i % len(flow_ids)])
                times.append(time.perf_counter() - t0)
                if reply.get("data", {}).get("launchRun", {}).get("__typename") == "LaunchRunSuccess":
                    ok += 1
                elif i == 0:
                    raise RuntimeError(f"launchRun failed: {reply}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"ready": ready, "p50": percentile(times, 50), "p95": percentile(times, 95), "ok": ok, "launches": launches}


WARM_LAUNCHER = {"run_launcher": {"module": "dp_instance.warm_launcher", "class": "WarmRunLauncher"}}


def shipped_run_queue() -> str:
    """The run coordinator as ``dp init-home`` writes it: ``FlowRunCoordinator``, which starts a
    run at submit when none is queued and the limits leave room (on PostgreSQL too: production's
    dagster.yaml keeps ``launch_at_submit`` off for now, and a queued run needs a daemon)."""
    from dp_assets.cli.home import local_run_queue

    return local_run_queue()


def launch_to_first_node(store: str, flow_id: str, launches: int, launcher: str, pg_url: str | None) -> dict[str, Any]:
    """``launchRun`` posted to a webserver, timed from the post to the run's first ``STEP_START``
    (the event's own clock), one run at a time, each waited until finished. ``launcher``:
    ``warm``, the shipped pair (the warm launcher behind ``FlowRunCoordinator`` as ``dp init-home``
    writes it, which starts the run at submit: no run is queued), or ``default``, Dagster's default launcher
    behind the ``DefaultRunCoordinator`` (launches at submit too; no daemon is needed). The first
    run is reported apart: with the warm launcher it starts the template."""
    import dagster as dg
    import yaml

    from bench.harness import percentile, pg_instance_yaml, wait_until, warm_template_ready
    from dp_assets.cli.home import local_storage

    tmp, env = _home(Path(store))
    home = tmp / "dagster"
    text = pg_instance_yaml(pg_url) if pg_url else "telemetry:\n  enabled: false\n" + local_storage(home)
    if launcher == "warm":
        text += shipped_run_queue() + yaml.safe_dump(WARM_LAUNCHER, sort_keys=False)
    else:
        text += "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
    (home / "dagster.yaml").write_text(text)
    latencies: list[float] = []
    phases: list[dict[str, float]] = []
    try:
        with _environment(env), dg.DagsterInstance.get() as instance:
            instance.get_runs_count()  # create the storage before the webserver opens it
            with _webserver(tmp, env) as (client, url, location, _ready):
                for launch in range(launches + 1):
                    if launch == 1 and launcher == "warm":  # the first run started the template
                        wait_until("the warm run template to load", lambda: warm_template_ready(home), [], timeout=300)
                    posted = time.time()
                    reply = _launch(client, url, location, flow_id)
                    launched = reply.get("data", {}).get("launchRun", {})
                    if launched.get("__typename") != "LaunchRunSuccess":
                        raise RuntimeError(f"launchRun failed: {reply}")
                    run_id = launched["run"]["runId"]
                    step_start = _wait_first_step(instance, run_id)
                    latencies.append(step_start - posted)
                    phases.append(_phases(instance, run_id, posted))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rest = latencies[1:]
    median_phases = {key: percentile([p[key] for p in phases[1:]], 50) for key in phases[0]}
    return {
        "first": latencies[0],
        "p50": percentile(rest, 50),
        "p95": percentile(rest, 95),
        "n": len(rest),
        "phases": median_phases,
    }


def _phases(instance: Any, run_id: str, posted: float) -> dict[str, float]:
    """Seconds after the post at which the run worker reported its process, the run started,
    and the first step started: where a launch's time goes."""
    import dagster as dg

    seen: dict[str, float] = {}
    for record in instance.get_records_for_run(run_id).records:
        entry = record.event_log_entry
        kind = entry.dagster_event_type
        if kind == dg.DagsterEventType.ENGINE_EVENT and "Started process for run" in (entry.user_message or ""):
            seen.setdefault("worker_process", entry.timestamp - posted)
        elif kind == dg.DagsterEventType.RUN_START:
            seen.setdefault("run_start", entry.timestamp - posted)
        elif kind == dg.DagsterEventType.STEP_START:
            seen.setdefault("step_start", entry.timestamp - posted)
    return seen


def _wait_first_step(instance: Any, run_id: str, bound_seconds: float = 600) -> float:
    """The first STEP_START's timestamp, once the run has finished successfully."""
    import dagster as dg

    deadline = time.time() + bound_seconds
    while time.time() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            if run.status != dg.DagsterRunStatus.SUCCESS:
                raise RuntimeError(f"run {run_id} ended {run.status}")
            records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
            return min(r.event_log_entry.timestamp for r in records)
        time.sleep(0.05)
    raise RuntimeError(f"run {run_id} did not finish within {bound_seconds:.0f} s")


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child
    from bench.workloads.load_time import flow_spec

    flows, launches = (20, 2) if ctx.smoke else (1000, 50)
    result = WorkloadResult("run_start", "7. Run start (run worker) and GraphQL launchRun")
    one = run_child("bench.workloads.load_time:prepare", {"flows": 1})["path"]
    many = run_child("bench.workloads.load_time:prepare", {"flows": flows})["path"]
    first = flow_spec(0)["id"]
    repeats = 1 if ctx.smoke else 3
    small = min((run_worker_start(one, first) for _ in range(repeats)), key=lambda r: r["to_step_start"])
    big = min((run_worker_start(many, first) for _ in range(repeats)), key=lambda r: r["to_step_start"])
    extra = big["to_step_start"] - small["to_step_start"]
    result.rows.append(
        ctx.row(
            "run_start",
            f"{flows:,} flows",
            "process start -> first step started",
            big["to_step_start"],
            "s",
            anchor=small["to_step_start"],
            anchor_label="location of 1 flow",
            target="< 2 s beyond 1 flow",
            met=extra < 2.0,
            check="ok",
            notes=f"{extra:+.1f} s beyond a 1-flow location (best of {repeats}); the run worker `dagster api execute_run` "
            "(compiles only the run's flow, dp_assets/loading.py)",
        )
    )
    result.rows += _warm_rows(ctx, one, first)
    launched = launch_runs(many, [flow_spec(i)["id"] for i in range(min(flows, 50))], launches)
    check = "ok" if launched["ok"] == launches else f"FAILED: {launched['ok']}/{launches} launches succeeded"
    result.rows += [
        ctx.row(
            "run_start",
            f"{flows:,} flows, {launches} launches",
            "launchRun response p95",
            launched["p95"] * 1000,
            "ms",
            target="< 500 ms",
            met=launched["p95"] < 0.5,
            check=check,
            notes=f"p50 {launched['p50'] * 1000:.0f} ms; QueuedRunCoordinator, no daemon; webserver ready "
            f"{launched['ready']:.0f} s after start",
        ),
    ]
    return result


def _warm_rows(ctx: RunContext, store: str, flow_id: str) -> list[Any]:
    """Launch -> first node started, the warm launcher against Dagster's default launcher in the
    same run, on the embedded default and on PostgreSQL (issue 19's target: p50 < 300 ms)."""
    from bench.harness import fresh_database, postgres_up

    launches = 3 if ctx.smoke else 10
    rows = []
    for storage in ("embedded", "postgres"):
        if storage == "postgres" and not postgres_up():
            continue
        measured = {}
        for launcher in ("default", "warm"):
            if storage == "postgres":
                with fresh_database(prefix="dp_bench_warm") as url:
                    measured[launcher] = launch_to_first_node(store, flow_id, launches, launcher, url)
            else:
                measured[launcher] = launch_to_first_node(store, flow_id, launches, launcher, None)
        warm, default = measured["warm"], measured["default"]
        rows.append(
            ctx.row(
                "run_start",
                f"warm launcher, {storage}",
                "launchRun -> first node started p50",
                warm["p50"] * 1000,
                "ms",
                anchor=default["p50"] * 1000,
                anchor_label="Dagster's default launcher",
                target="< 300 ms",
                met=warm["p50"] < 0.3,
                check="ok",
                notes=f"p95 {warm['p95'] * 1000:.0f} ms vs {default['p95'] * 1000:.0f} ms; {warm['n']} runs one "
                f"at a time after a first run and its template's load ({warm['first']:.1f} s warm with the template's start, "
                f"{default['first']:.1f} s default); warm: the shipped FlowRunCoordinator (starts runs at "
                "submit), default: DefaultRunCoordinator; 1-flow location, 5-node flow",
            )
        )
    return rows
