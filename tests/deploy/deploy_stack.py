"""The production stack as plain processes, running the platform's own code location.

``start_stack`` runs what docker-compose.yml runs, on loopback: a gRPC code server for
``dp_assets.definitions``, a webserver, the daemon and N Celery workers, with the repository's
``dagster.yaml`` (monitoring bounds shortened for tests) on a PostgreSQL database, the flow store
on a second one, Celery over Redis or RabbitMQ, and a folder of flow specs (``DP_FLOWS_DIR``)
that the location imports when it loads. Every process sees the same environment, as in compose:
``DP_EXECUTOR=celery``, ``DP_CELERY_CONFIG`` (the worker file, read by the executor too) and one
``DP_OUTPUTS_URL`` folder that all workers share. Every process has its own process group;
``Stack.stop`` ends them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus

from dp_assets.compiler import celery as cc
from tests.support.processes import (
    PYTHON,
    REPO_ROOT,
    ManagedProcess,
    base_env,
    free_port,
    http_status,
    start_process,
    stop_all,
    wait_for,
    wait_until,
)

LOCATION_NAME = "dp_platform"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
NOT_FINISHED = {
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
}
#: As in docker-compose.yml: a fresh PostgreSQL connection per checkout, so that the webserver
#: never uses a connection that a database restart has closed (F4).
WEBSERVER_DB_OPTIONS = ("--db-pool-recycle", "0")
#: The engine event a Celery worker reports when it starts a step (dagster_celery.tasks).
CELERY_STEP_MESSAGE = "in celery worker"


def instance_yaml(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The production dagster.yaml with test-sized monitoring (deep-merged ``overrides``)."""
    config = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"].update({"poll_interval_seconds": 2, "max_runtime_seconds": 600})
    config["run_coordinator"]["config"]["dequeue_interval_seconds"] = 1
    _merge(config, overrides or {})
    return config


def _merge(base: dict, extra: Mapping) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


@dataclass(frozen=True)
class StepExecution:
    """One time a Celery worker started a step: its node name and the pool process's pid."""

    step_key: str
    worker: str  # Celery node name, e.g. worker1@host
    pid: int
    timestamp: float

    @property
    def worker_name(self) -> str:
        return self.worker.split("@", 1)[0]


@dataclass
class Stack:
    root: Path
    home: Path
    env: dict[str, str]
    webserver_url: str
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def outputs(self) -> Path:
        return Path(self.env["DP_OUTPUTS_URL"])

    @property
    def workers(self) -> dict[str, ManagedProcess]:
        return {k: p for k, p in self.processes.items() if k.startswith("worker")}

    @contextlib.contextmanager
    def instance(self) -> Iterator[DagsterInstance]:
        """The stack's instance in this process (its dagster.yaml reads DAGSTER_PG_* on open)."""
        saved = {key: os.environ.get(key) for key in self.env if key.startswith("DAGSTER_PG_")}
        os.environ.update({key: self.env[key] for key in saved})
        try:
            with DagsterInstance.from_config(str(self.home)) as instance:
                yield instance
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    # --- GraphQL, as a user or another tool would use it ---------------------------------------

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(
            f"{self.webserver_url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        assert response.status_code == 200, f"GraphQL {response.status_code}: {response.text[:3000]}"
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def launch(self, job: str, run_config: dict | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Launch ``job`` (a flow id) through GraphQL; run config = the flow's params."""
        data = self.graphql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "... on RunConfigValidationInvalid { errors { message } } } }",
            {
                "p": {
                    "selector": {
                        "repositoryLocationName": LOCATION_NAME,
                        "repositoryName": "__repository__",
                        "jobName": job,
                    },
                    "runConfigData": run_config or {},
                    "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
                }
            },
        )
        result = data["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def reexecute(self, parent_run_id: str, strategy: str = "FROM_FAILURE") -> str:
        """Re-execute a run through GraphQL (what the UI's "Re-execute from failure" does)."""
        data = self.graphql(
            "mutation($p: ReexecutionParams!) { launchRunReexecution(reexecutionParams: $p) { "
            "__typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } "
            "} }",
            {"p": {"parentRunId": parent_run_id, "strategy": strategy}},
        )
        result = data["launchRunReexecution"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> str:
        """``terminateRun`` through GraphQL (the UI's Terminate button); the result's type name."""
        data = self.graphql(
            "mutation($r: String!) { terminateRun(runId: $r) { __typename "
            "... on TerminateRunFailure { message } ... on PythonError { message } } }",
            {"r": run_id},
        )
        return data["terminateRun"]["__typename"]

    # --- runs and their event log ----------------------------------------------------------------

    def wait_run(
        self,
        run_id: str,
        statuses: Iterable[DagsterRunStatus] = FINISHED,
        bound_seconds: float = 300,
    ) -> DagsterRun:
        """Poll until the run is in one of ``statuses`` (a hang guard, not a speed check)."""
        wanted = set(statuses)
        deadline = time.monotonic() + bound_seconds
        with self.instance() as instance:
            while True:
                run = instance.get_run_by_id(run_id)
                if run is not None and run.status in wanted:
                    return run
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"run {run_id} is {run.status if run else 'missing'}, not one of "
                        f"{sorted(s.value for s in wanted)}\n{self.describe(run_id)}"
                    )
                time.sleep(0.5)

    def wait_for(self, what: str, ready: Any, bound_seconds: float = 120, interval: float = 0.3) -> Any:
        """Poll ``ready()`` until it returns something truthy; fail with the logs otherwise."""
        return wait_for(what, ready, timeout=bound_seconds, every=interval, on_timeout=self.logs)

    def retry_of(self, run_id: str) -> DagsterRun | None:
        """The run that the run-retry daemon launched for ``run_id``, if any."""
        with self.instance() as instance:
            for run in instance.get_runs():
                if run.tags.get("dagster/parent_run_id") == run_id:
                    return run
        return None

    def runs(self) -> list[DagsterRun]:
        with self.instance() as instance:
            return list(instance.get_runs())

    def records(self, run_id: str) -> list[Any]:
        with self.instance() as instance:
            return list(instance.all_logs(run_id))

    def step_executions(self, run_id: str) -> list[StepExecution]:
        """Every start of a step on a Celery worker, in order (a step redelivered shows twice).

        The worker's node name is in the engine event that dagster-celery reports when a task
        starts; the pool process's pid is on the step's next ``STEP_START`` event (pid 0 while
        the step has not reached it).
        """
        found: list[StepExecution] = []
        waiting: dict[str, int] = {}  # step key -> index in found, until its STEP_START
        for record in self.records(run_id):
            event = record.dagster_event
            if not (event and event.step_key):
                continue
            if event.is_engine_event:
                worker = (event.engine_event_data.metadata or {}).get("Celery worker")
                if worker is not None:
                    waiting[event.step_key] = len(found)
                    found.append(StepExecution(event.step_key, worker.value, 0, record.timestamp))
            elif event.event_type == DagsterEventType.STEP_START and event.step_key in waiting:
                index = waiting.pop(event.step_key)
                found[index] = dataclasses.replace(found[index], pid=event.pid or 0)
        return found

    def events_of(self, run_id: str, event_type: DagsterEventType) -> list[Any]:
        return [r for r in self.records(run_id) if r.dagster_event and r.dagster_event.event_type == event_type]

    def timeline(self, run_id: str) -> str:
        """The run's events as seconds since its first one (for failure messages)."""
        records = self.records(run_id)
        if not records:
            return "(no events)"
        t0 = records[0].timestamp
        return "\n".join(
            f"{r.timestamp - t0:7.2f} {r.dagster_event.event_type_value:<24} {r.step_key or ''}"
            for r in records
            if r.dagster_event
        )

    def run_worker_pid(self, run_id: str) -> int:
        """The pid of the run's worker process (``dagster api execute_run``)."""
        starts = self.events_of(run_id, DagsterEventType.RUN_START)
        assert starts, f"run {run_id} has not started\n{self.describe(run_id)}"
        return starts[0].dagster_event.pid

    def describe(self, run_id: str, chars: int = 1500) -> str:
        """The run's failures and engine messages, then every process's log tail."""
        lines = []
        try:
            for record in self.records(run_id):
                event = record.dagster_event
                if event is None:
                    continue
                if event.is_failure or event.event_type in (
                    DagsterEventType.RUN_FAILURE,
                    DagsterEventType.ENGINE_EVENT,
                    DagsterEventType.STEP_FAILURE,
                ):
                    text = record.user_message or event.message or ""
                    error = event.event_specific_data
                    detail = getattr(error, "error", None) or getattr(error, "error_info", None)
                    lines.append(f"{event.event_type_value} {event.step_key or ''}: {text}")
                    if detail is not None:
                        lines.append(str(getattr(detail, "message", detail))[:800])
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the real failure
            lines.append(f"(event log unreadable: {exc})")
        return "\n".join(lines[-40:]) + "\n" + self.logs(chars)

    # --- processes -------------------------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group of ``name`` (a worker and its pool)."""
        self.processes[name].signal_group(sig)

    def restart(self, name: str) -> ManagedProcess:
        """Kill ``name``'s process group with SIGKILL and start the same command again (what a
        process manager does after a crash); the code server is waited for until it serves."""
        old = self.processes[name]
        old.signal_group(signal.SIGKILL)
        old.popen.wait(30)
        new = start_process(name, old.popen.args, env=self.env, log_dir=old.log_path.parent)
        self.processes[name] = new
        if name == "code-server":
            port = int(new.popen.args[new.popen.args.index("-p") + 1])
            wait_until(lambda: _grpc_healthy(port, self.env), process=new, what="code server")
        return new

    def logs(self, chars: int = 1500) -> str:
        return "\n".join(f"--- {name} ---\n{proc.log_tail(chars)}" for name, proc in self.processes.items())

    def stop(self, grace_seconds: float = 10) -> None:
        """SIGTERM every process group at once, then SIGKILL what is left after the grace."""
        stop_all(self.processes.values(), grace_seconds)


def pg_env(postgres_url: str) -> dict[str, str]:
    url = sa.make_url(postgres_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
    }


def start_stack(
    root: Path,
    *,
    postgres_url: str,
    store_url: str,
    broker_url: str,
    backend_url: str,
    flows_dir: Path,
    workers: int = 2,
    worker_concurrency: int = 1,
    longest_step_seconds: float = 30,
    tuning: Mapping[str, int] | None = None,
    instance_overrides: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
    sink_connections: Iterable[str] = ("sink",),
) -> Stack:
    """Start the stack under ``root``; on any start-up failure, stop what started and raise.

    ``postgres_url`` holds Dagster's storage, ``store_url`` the flow store and the tables of the
    flows' named database connections ``sink_connections`` (``DP_DB_<NAME>_URL``, e.g.
    ``DP_DB_SINK_URL``). ``longest_step_seconds`` and ``tuning`` render the worker file
    (:func:`dp_assets.compiler.celery.render_worker_yaml`), which the executor reads too.
    """
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(instance_overrides)))
    worker_yaml = root / "celery-worker.yaml"
    worker_yaml.write_text(cc.render_worker_yaml(longest_step_seconds, **(tuning or {})))
    grpc_port, web_port = free_port(), free_port()
    workspace = home / "workspace.yaml"
    grpc = {"host": "127.0.0.1", "port": grpc_port, "location_name": LOCATION_NAME}
    workspace.write_text(yaml.safe_dump({"load_from": [{"grpc_server": grpc}]}))
    env = base_env(
        DAGSTER_HOME=str(home),
        DP_HOME=str(root / "dp_home"),
        DP_DATA_DIR=str(root / "data"),
        DP_OUTPUTS_URL=str(root / "outputs"),
        DP_FLOWS_DIR=str(flows_dir),
        DP_STORE_URL=store_url,
        **{f"DP_DB_{name.upper()}_URL": store_url for name in sink_connections},
        DP_EXECUTOR="celery",
        DP_CELERY_CONFIG=str(worker_yaml),
        DP_CELERY_BROKER=broker_url,
        DP_CELERY_BACKEND=backend_url,
        **pg_env(postgres_url),
        **(extra_env or {}),
    )
    logs = root / "logs"
    stack = Stack(root, home, env, f"http://127.0.0.1:{web_port}")
    try:
        # Everything that only imports starts at once (each takes seconds on a busy machine);
        # the daemon waits for the code server, since it reloads a failed workspace only every
        # 60 s, while the webserver is told to reload the location once it is up.
        code = start_process(
            "code-server",
            [
                PYTHON,
                "-m",
                "dagster",
                "code-server",
                "start",
                "-m",
                "dp_assets.definitions",
                "--location-name",
                LOCATION_NAME,
                "-h",
                "127.0.0.1",
                "-p",
                str(grpc_port),
            ],
            env=env,
            log_dir=logs,
        )
        stack.processes["code-server"] = code
        for index in range(1, workers + 1):
            add_worker(stack, f"worker{index}", concurrency=worker_concurrency)
        web = start_process(
            "webserver",
            [
                PYTHON,
                "-m",
                "dagster_webserver",
                "-h",
                "127.0.0.1",
                "-p",
                str(web_port),
                "-w",
                str(workspace),
                *WEBSERVER_DB_OPTIONS,
            ],
            env=env,
            log_dir=logs,
        )
        stack.processes["webserver"] = web
        wait_until(
            lambda: _grpc_healthy(grpc_port, env),
            process=code,
            what="the code server serving gRPC",
            bound_seconds=180,
        )
        stack.processes["daemon"] = start_process(
            "daemon",
            [str(Path(PYTHON).parent / "dagster-daemon"), "run", "-w", str(workspace)],
            env=env,
            log_dir=logs,
        )
        wait_until(
            lambda: http_status(f"{stack.webserver_url}/server_info") == 200,
            process=web,
            what="the webserver answering",
        )
        wait_until(lambda: _location_loaded(stack), process=web, what="the location loading")
        wait_workers(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def add_worker(stack: Stack, name: str, *, concurrency: int = 1) -> ManagedProcess:
    """Start a Celery worker named ``name`` with the stack's worker file (not waited for)."""
    process = start_process(
        name,
        [
            PYTHON,
            "-m",
            "dp_deploy",
            "celery-worker",
            "-y",
            stack.env["DP_CELERY_CONFIG"],
            "-n",
            f"{name}@%h",
            "-c",
            str(concurrency),
            "--config-dir",
            str(stack.root / f"celery-{name}"),
        ],
        env=stack.env,
        log_dir=stack.root / "logs",
    )
    stack.processes[name] = process
    return process


def _location_loaded(stack: Stack) -> bool:
    """True once the webserver has the location; reload it when it shows a load error (the
    webserver may have started before the code server served). A lasting error is raised."""
    data = stack.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { "
        "__typename ... on PythonError { message } } } } } }"
    )
    for entry in data["workspaceOrError"]["locationEntries"]:
        loaded = entry["locationOrLoadError"] or {}
        if entry["name"] != LOCATION_NAME:
            continue
        if loaded.get("__typename") == "RepositoryLocation":
            return True
        if loaded.get("__typename") == "PythonError":
            reloaded = stack.graphql(
                "mutation($n: String!) { reloadRepositoryLocation(repositoryLocationName: $n) "
                "{ __typename ... on WorkspaceLocationEntry { locationOrLoadError { __typename "
                "... on PythonError { message } } } } }",
                {"n": LOCATION_NAME},
            )["reloadRepositoryLocation"]
            result = reloaded.get("locationOrLoadError") or {}
            if result.get("__typename") == "PythonError":
                raise RuntimeError(f"{LOCATION_NAME} failed to load: {result['message']}")
            return result.get("__typename") == "RepositoryLocation"
    return False


def load_problems(stack: Stack) -> str:
    """The location's flow load report (flows left out and why); empty when all loaded."""
    data = stack.graphql('{ assetNodes(assetKeys: [{path: ["dp_platform", "flow_load_report"]}]) { description } }')
    nodes = data["assetNodes"]
    description = nodes[0]["description"] if nodes else ""
    return "" if "problem" not in description else description


def _grpc_healthy(port: int, env: Mapping[str, str]) -> bool:
    result = subprocess.run(
        [PYTHON, "-m", "dagster", "api", "grpc-health-check", "-p", str(port)],
        env=dict(env),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def wait_workers(stack: Stack, names: Iterable[str] | None = None) -> None:
    """Wait until each named worker (default: all) answers a ping over the broker."""
    from celery import Celery

    app = Celery(broker=stack.env["DP_CELERY_BROKER"], backend=stack.env["DP_CELERY_BACKEND"])
    host = os.uname().nodename
    try:
        for name in names or list(stack.workers):
            node = f"{name}@{host}"
            wait_until(
                lambda node=node: bool(app.control.ping(destination=[node], timeout=1)),
                process=stack.processes[name],
                what=f"{node} answering pings",
            )
    finally:
        app.close()
