"""A live platform for the workloads that need Dagster's own processes: a home made by
``dp init-home`` (with the instance changes a workload asks for), ``dagster-daemon`` and
``dagster-webserver`` on loopback serving the flows folder, and what a workload reads back from
the instance afterwards (each run's history).

Used in a benchmark child process (``bench.child``): :func:`live_platform` points this process's
environment at the home, so ``dg.DagsterInstance.get()`` opens the instance the processes use.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from bench.harness import popen_in_session, signal_group, wait_until
from bench.workloads.events_e2e import BIN, _environment, start_dagster, stop_all

#: Dagster's own run launcher: a fresh run worker process per run (the anchor of the warm one).
DEFAULT_LAUNCHER = {"module": "dagster", "class": "DefaultRunLauncher"}


@dataclass
class LivePlatform:
    root: Path
    env: dict[str, str]
    url: str
    procs: list[subprocess.Popen]
    logs: list[IO[str]]
    client: Any  # dp_sensors.launch.GraphQLClient

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def wait(self, what: str, probe: Callable[[], Any], timeout: float = 300, every: float = 0.25) -> Any:
        """``probe``'s first truthy value (:func:`bench.harness.wait_until` on this platform's
        processes)."""
        return wait_until(what, probe, self.procs, timeout, every, logs_in=self.root)

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen:
        """Another process on this home (e.g. ``dp dispatch``), logging to ``root/NAME.log``."""
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - the process writes to it until stopped
        self.logs.append(log)
        proc = popen_in_session(argv, env=self.env, cwd=self.root, stdout=log)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL ``proc`` and what it started (no chance to clean up) and stop watching it."""
        signal_group(proc, signal.SIGKILL)
        proc.wait()
        self.procs.remove(proc)

    def log_text(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def live_platform(
    prefix: str,
    specs: Sequence[Mapping[str, Any]],
    *,
    instance: Callable[[dict[str, Any]], None] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[LivePlatform]:
    """``dp init-home``, then ``instance(config)`` edits the instance file's mapping, then the
    daemon and the webserver; yields once the webserver serves every flow in ``specs``."""
    from bench.harness import free_port
    from dp_sensors.launch import GraphQLClient, LaunchError

    root = Path(tempfile.mkdtemp(prefix=prefix))
    environment = {**_environment(root), **(env or {})}
    (root / "flows").mkdir(parents=True)
    for spec in specs:
        (root / "flows" / f"{spec['id']}.yaml").write_text(yaml.safe_dump(dict(spec), sort_keys=False))
    subprocess.run([str(BIN / "dp"), "init-home"], env=environment, check=True, capture_output=True)
    if instance is not None:
        instance_file = Path(environment["DAGSTER_HOME"]) / "dagster.yaml"
        config = yaml.safe_load(instance_file.read_text())
        instance(config)
        instance_file.write_text(yaml.safe_dump(config, sort_keys=False))
    saved_environment = dict(os.environ)
    os.environ.update(environment)  # this process reads the same instance and bus
    port = free_port()
    logs = [open(root / f"{name}.log", "w") for name in ("daemon", "webserver")]  # noqa: SIM115
    procs = start_dagster(root, environment, port, logs)
    client = GraphQLClient(f"http://127.0.0.1:{port}/graphql", timeout=120)
    live = LivePlatform(root, environment, f"http://127.0.0.1:{port}", procs, logs, client)
    try:

        def loaded() -> bool:
            try:
                for spec in specs:
                    client.location_of(spec["id"])
                return True
            except LaunchError:  # not answering yet, or the location still loading
                return False

        live.wait("the webserver to load the flows", loaded, timeout=600)
        yield live
    except BaseException:
        print(f"the live platform's home and logs are kept in {root}", file=sys.stderr)
        raise
    finally:
        client.close()
        stop_all(procs, logs)
        _stop_warm_templates()
        os.environ.clear()
        os.environ.update(saved_environment)
    shutil.rmtree(root, ignore_errors=True)  # kept above when something failed


def _stop_warm_templates() -> None:
    """The warm templates the runs were forked from run in sessions of their own and outlive the
    daemon (until ``idle_seconds``): stop them before their home is deleted."""
    import dagster as dg

    from dp_instance.warm_launcher import WORKER_TAG

    with dg.DagsterInstance.get() as instance:
        tagged = [json.loads(run.tags[WORKER_TAG]) for run in instance.get_runs() if WORKER_TAG in run.tags]
    for pid in {worker["template"] for worker in tagged if worker.get("template", 0) > 0}:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def wait_finished(instance: Any, run_ids: Sequence[str], timeout: float, live: LivePlatform) -> None:
    """Until every run in ``run_ids`` has finished (whatever its status)."""
    import dagster as dg

    finished_filter = dg.RunsFilter(
        run_ids=list(run_ids),
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
    )

    def finished() -> bool:
        return instance.get_runs_count(finished_filter) == len(run_ids)

    live.wait(f"{len(run_ids)} runs to finish", finished, timeout=timeout)


def history_problems(instance: Any, run_ids: Sequence[str], nodes: int) -> list[str]:
    """What is missing from each run's recorded history: the run is SUCCESS and its event log
    holds the run's start and success, its step's start and success, and one materialisation
    per node (what the UI's run page and the asset catalog show). Empty when all is there."""
    import dagster as dg

    kind = dg.DagsterEventType
    needed = (kind.RUN_START, kind.STEP_START, kind.STEP_SUCCESS, kind.RUN_SUCCESS)
    problems = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        if run is None:
            problems.append(f"run {run_id}: missing")
            continue
        entries = [r.event_log_entry for r in instance.get_records_for_run(run_id).records]
        if run.status != dg.DagsterRunStatus.SUCCESS:
            # why, as the run's page says it: the failure's message (e.g. the monitoring daemon's
            # "run worker did not start in time" under load)
            why = [e.message for e in entries if e.dagster_event_type == kind.RUN_FAILURE]
            problems.append(f"run {run_id}: {run.status.value}: {' '.join(why)[:300]}")
            continue
        kinds = [entry.dagster_event_type for entry in entries]
        missing = [k.value for k in needed if k not in kinds]
        materialised = kinds.count(kind.ASSET_MATERIALIZATION)
        if missing or materialised != nodes:
            problems.append(f"run {run_id}: missing {missing}, {materialised} of {nodes} materialisations")
    return problems


def run_timeline(instance: Any, run_id: str) -> dict[str, float]:
    """Wall-clock times of a run: ``created`` (the run record), then the first event of each
    kind the run reached: ``launched`` (RUN_STARTING), ``started`` (RUN_START), ``step``
    (STEP_START), ``success`` (RUN_SUCCESS); and ``ended`` (the record's end, whatever the status)."""
    import dagster as dg

    kind = dg.DagsterEventType
    record = instance.get_run_record_by_id(run_id)
    seen: dict[str, float] = {"created": record.create_timestamp.timestamp()}
    if record.end_time is not None:
        seen["ended"] = record.end_time
    names = {kind.RUN_STARTING: "launched", kind.RUN_START: "started", kind.STEP_START: "step"}
    names[kind.RUN_SUCCESS] = "success"
    for entry in instance.get_records_for_run(run_id).records:
        name = names.get(entry.event_log_entry.dagster_event_type)
        if name:
            seen.setdefault(name, entry.event_log_entry.timestamp)
    return seen
