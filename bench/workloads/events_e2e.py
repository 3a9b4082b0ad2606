"""Workload 5, end to end: an event on the bus -> its run's first step started, with the real
``dagster-daemon`` and ``dagster-webserver`` running.

The embedded default as a user gets it (``dp init-home``'s instance: SQLite, the platform's run
coordinator, which starts a run at submit when none is queued and the limits leave room, and
the warm run launcher) with tuned intervals: the flow's event sensor ticks every second
(``DP_SENSOR_INTERVAL_SECONDS=1``) and the run queue, when a run does queue, is read every second. The bench waits
for the sensor's first tick (start-up is not an event's latency), then publishes one event at a
time, a fixed spacing apart, on the SQL bus of the flow store, and reads back each event's run
(tag ``dp/event_id``) and its ``STEP_START`` time. Check: exactly one run per event, each one
successful.

Before the measured events, one warm-up event, timed on its own (``first_event``): a platform's
first run starts its warm run template, and the runs that arrive while that template loads
start cold (docs/run-launcher.md). That is start-up, as the sensor's first tick is; the measured
events start once the template is ready, as every event does on a platform that has run before.

With ``dispatcher=True`` ``dp dispatch`` runs beside them (as ``make run`` starts it) and starts
the runs as events arrive; the sensor still ticks, so the check "exactly one run per event" also
covers the two of them racing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import yaml

from bench.harness import popen_in_session, stop_groups, wait_until, warm_template_ready

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
FLOW_ID = "bench_event_e2e"
TOPIC = "bench.e2e.created"


def flow_spec() -> dict[str, Any]:
    from bench.workloads.events import flow_spec as event_flow

    return event_flow(FLOW_ID, "bench.e2e.*")


def _environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update(
        {
            "DP_HOME": str(root / "home"),
            "DAGSTER_HOME": str(root / "home" / "dagster"),
            "DP_FLOWS_DIR": str(root / "flows"),
            "DP_SENSOR_INTERVAL_SECONDS": "1",
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _prepare(root: Path, env: dict[str, str]) -> None:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / f"{FLOW_ID}.yaml").write_text(yaml.safe_dump(flow_spec()))
    subprocess.run([str(BIN / "dp"), "init-home"], env=env, check=True, capture_output=True)
    instance_file = Path(env["DAGSTER_HOME"]) / "dagster.yaml"
    config = yaml.safe_load(instance_file.read_text())
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1  # as shipped; Dagster's default is 5 s
    instance_file.write_text(yaml.safe_dump(config, sort_keys=False))


def start_dagster(root: Path, env: dict[str, str], port: int, logs: list[IO[str]]) -> list[subprocess.Popen]:
    """``dagster-daemon`` and ``dagster-webserver`` (on ``port``) as ``make run`` starts them,
    writing to ``logs[0]`` and ``logs[1]``."""
    daemon = [str(BIN / "dagster-daemon"), "run", "-m", "dp_assets.definitions"]
    webserver = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", "dp_assets.definitions"]
    return [
        popen_in_session(command, env=env, cwd=root, stdout=log)
        for command, log in ((daemon, logs[0]), (webserver, logs[1]))
    ]


def stop_all(procs: list[subprocess.Popen], logs: list[IO[str]]) -> None:
    """Stop the processes' groups, the code servers they started included (what does not stop
    within 30 s is killed), and close their logs."""
    stop_groups(procs, grace_seconds=30)
    for log in logs:
        log.close()


def measure(events: int, spacing_seconds: float, dispatcher: bool = False) -> dict[str, Any]:
    """Child entry point."""
    import dagster as dg

    from bench.harness import free_port, percentile

    root = Path(tempfile.mkdtemp(prefix="dp-bench-events-e2e-"))
    env = _environment(root)
    _prepare(root, env)
    os.environ.update(env)  # this process publishes to the same bus and reads the same instance
    logs = [open(root / f"{name}.log", "w") for name in ("daemon", "webserver", "dispatch")]  # noqa: SIM115
    port = free_port()
    procs = start_dagster(root, env, port, logs)
    try:
        from dp_sensors.events import EventBusResource

        instance = dg.DagsterInstance.get()
        sensor = f"{FLOW_ID}_event_sensor"

        wait_until("the event sensor's first tick", lambda: _has_ticks(instance, sensor), procs)
        if dispatcher:
            url = f"http://127.0.0.1:{port}/graphql"
            command = [str(BIN / "dp"), "dispatch", "--dagster-url", url]
            procs.append(popen_in_session(command, env=env, cwd=root, stdout=logs[2]))
            log_file = root / "dispatch.log"
            wait_until("the dispatcher to follow the bus", lambda: "following" in log_file.read_text(), procs)
        published: dict[str, float] = {}
        with EventBusResource().open_bus() as bus:
            warm_up = bus.publish(TOPIC, {"order": -1})
            first_event = _first_step_after(instance, warm_up.id, time.time(), procs)
            wait_until(
                "the warm run template to load",
                lambda: warm_template_ready(Path(env["DAGSTER_HOME"])),
                procs,
                timeout=300,
            )
            for i in range(events):
                event = bus.publish(TOPIC, {"order": i})
                published[event.id] = time.time()
                time.sleep(spacing_seconds)

        def all_finished() -> list[dict[str, float]] | None:
            phases = []
            for event_id, published_at in published.items():
                runs = instance.get_runs(dg.RunsFilter(tags={"dp/event_id": event_id}))
                if len(runs) != 1 or runs[0].status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
                    return None
                phases.append(_phases(instance, runs[0], published_at))
            return phases

        phases = wait_until("every event's run to finish", all_finished, procs, timeout=300 + 30 * events)
        runs_per_event = [len(instance.get_runs(dg.RunsFilter(tags={"dp/event_id": e}))) for e in published]
        latencies = [p["step_started"] for p in phases]
        return {
            "events": events,
            "spacing": spacing_seconds,
            "runs": sum(runs_per_event),
            "exactly_one": all(n == 1 for n in runs_per_event),
            "succeeded": sum(p["success"] for p in phases),
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies),
            "first_event": first_event,
            # median seconds after publishing at which each phase was reached
            "phases": {
                name: percentile([p[name] for p in phases], 50)
                for name in ("run_created", "run_launched", "run_started", "step_started")
            },
        }
    finally:
        stop_all(procs, logs)


def _phases(instance: Any, run: Any, published_at: float) -> dict[str, float]:
    """Seconds from publishing the event to: the sensor creating the run, the queue launching
    it, the run worker starting, the first step starting."""
    import dagster as dg

    record = instance.get_run_record_by_id(run.run_id)
    firsts: dict[Any, float] = {}
    for entry in instance.get_records_for_run(run.run_id).records:
        kind = entry.event_log_entry.dagster_event_type
        firsts.setdefault(kind, entry.timestamp)
    kind = dg.DagsterEventType
    return {
        "run_created": record.create_timestamp.timestamp() - published_at,
        "run_launched": firsts[kind.RUN_STARTING] - published_at,
        "run_started": firsts[kind.RUN_START] - published_at,
        "step_started": firsts[kind.STEP_START] - published_at,
        "success": float(run.status == dg.DagsterRunStatus.SUCCESS),
    }


def _first_step_after(instance: Any, event_id: str, published_at: float, procs: list[subprocess.Popen]) -> float:
    """Seconds from ``published_at`` to the first step of the event's run, once that run has
    finished successfully."""
    import dagster as dg

    def finished() -> Any:
        runs = instance.get_runs(dg.RunsFilter(tags={"dp/event_id": event_id}))
        done = runs and runs[0].status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
        return runs[0] if done else None

    run = wait_until("the warm-up event's run to finish", finished, procs, timeout=300)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"the warm-up event's run {run.run_id} failed")
    return _phases(instance, run, published_at)["step_started"]


def _has_ticks(instance: Any, sensor_name: str) -> bool:
    """The daemon has ticked the sensor at least once (any tick in its history)."""
    for state in instance.all_instigator_state():
        if state.name == sensor_name:  # names are unique across sensors and schedules
            return bool(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1))
    return False
