"""The production stack as plain processes, for the Celery integration and fault tests.

``start_stack`` runs what docker-compose.yml runs, on loopback: a gRPC code server, a webserver,
the daemon and N Celery workers, against a PostgreSQL database and Redis databases of the
caller's choosing, with the repository's ``dagster.yaml`` (monitoring bounds shortened for
tests). Every process has its own process group; ``Stack.stop`` ends them all.
"""

from __future__ import annotations

import contextlib
import json
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
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from deploy_procs import (
    PYTHON,
    REPO_ROOT,
    ManagedProcess,
    base_env,
    free_port,
    http_status,
    start_process,
    wait_until,
)

from dp_resources import celery_config as cc

LOCATION_NAME = "deploy_celery"
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


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


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    webserver_url: str
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

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

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(
            f"{self.webserver_url}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def launch(
        self, job: str, run_config: dict | None = None, tags: Mapping[str, str] | None = None
    ) -> str:
        """Launch ``job`` through GraphQL, as a user or another tool would; return the run id."""
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
                    "executionMetadata": {
                        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
                    },
                }
            },
        )
        result = data["data"]["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def wait_run(
        self,
        run_id: str,
        statuses: Iterable[DagsterRunStatus] = FINISHED,
        bound_seconds: float = 300,
    ) -> DagsterRun:
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
                        f"{sorted(s.value for s in wanted)}\n{self.logs()}"
                    )
                time.sleep(0.5)

    def celery_workers_of(self, run_id: str) -> dict[str, str]:
        """step key -> Celery worker node name, from the run's event log."""
        found: dict[str, str] = {}
        with self.instance() as instance:
            for record in instance.all_logs(run_id):
                event = record.dagster_event
                if event and event.is_engine_event and event.step_key:
                    metadata = event.engine_event_data.metadata or {}
                    worker = metadata.get("Celery worker")
                    if worker is not None:
                        found[event.step_key] = worker.value
        return found

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process group of ``name`` (a worker and its pool)."""
        self.processes[name].signal_group(sig)

    def logs(self, chars: int = 1500) -> str:
        return "\n".join(
            f"--- {name} ---\n{proc.log_tail(chars)}" for name, proc in self.processes.items()
        )

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()


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
    broker_url: str,
    backend_url: str,
    workers: int = 2,
    worker_concurrency: int = 1,
    longest_step_seconds: float = 30,
    tuning: Mapping[str, int] | None = None,
    instance_overrides: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Stack:
    """Start the stack under ``root``; on any start-up failure, stop what started and raise.

    ``tuning`` goes to :func:`dp_resources.celery_config.celery_settings` on both sides (worker
    file and the location's executor), e.g. short redelivery for fault tests.
    """
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(instance_overrides)))
    worker_yaml = root / "celery-worker.yaml"
    worker_yaml.write_text(cc.render_worker_yaml(longest_step_seconds, **(tuning or {})))
    grpc_port, web_port = free_port(), free_port()
    workspace = home / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": grpc_port,
                            "location_name": LOCATION_NAME,
                        }
                    }
                ]
            }
        )
    )
    env = base_env(
        DAGSTER_HOME=str(home),
        DP_CELERY_BROKER=broker_url,
        DP_CELERY_BACKEND=backend_url,
        DP_OUTPUTS_URL=str(root / "outputs"),
        DP_TEST_MARKERS=str(root / "markers"),
        DP_TEST_LONGEST_STEP_SECONDS=str(longest_step_seconds),
        DP_TEST_CELERY_TUNING=json.dumps(dict(tuning or {})),
        **pg_env(postgres_url),
        **(extra_env or {}),
    )
    logs = root / "logs"
    location = Path(__file__).with_name("deploy_celery_location.py")
    stack = Stack(home, env, f"http://127.0.0.1:{web_port}")
    try:
        code = start_process(
            "code-server",
            [PYTHON, "-m", "dagster", "code-server", "start", "-f", str(location)]
            + ["--location-name", LOCATION_NAME, "-h", "127.0.0.1", "-p", str(grpc_port)],
            env=env,
            log_dir=logs,
        )
        stack.processes["code-server"] = code
        for index in range(1, workers + 1):
            name = f"worker{index}"
            stack.processes[name] = start_process(
                name,
                [PYTHON, "-m", "dp_resources.deployment", "celery-worker", "-y", str(worker_yaml)]
                + ["-n", f"{name}@%h", "-c", str(worker_concurrency)]
                + ["--config-dir", str(root / f"celery-{name}")],
                env=env,
                log_dir=logs,
            )
        wait_until(
            lambda: _grpc_healthy(grpc_port, env),
            process=code,
            what="the code server serving gRPC",
        )
        web = start_process(
            "webserver",
            [PYTHON, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(web_port)]
            + ["-w", str(workspace)],
            env=env,
            log_dir=logs,
        )
        stack.processes["webserver"] = web
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
        _wait_workers(stack, broker_url, backend_url)
    except BaseException:
        stack.stop()
        raise
    return stack


def _location_loaded(stack: Stack) -> bool:
    data = stack.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { "
        "__typename ... on PythonError { message } } } } } }"
    )
    for entry in data["data"]["workspaceOrError"]["locationEntries"]:
        loaded = entry["locationOrLoadError"] or {}
        if entry["name"] == LOCATION_NAME and loaded.get("__typename") == "PythonError":
            raise RuntimeError(f"{LOCATION_NAME} failed to load: {loaded['message']}")
        if entry["name"] == LOCATION_NAME and loaded.get("__typename") == "RepositoryLocation":
            return True
    return False


def _grpc_healthy(port: int, env: Mapping[str, str]) -> bool:
    result = subprocess.run(
        [PYTHON, "-m", "dagster", "api", "grpc-health-check", "-p", str(port)],
        env=dict(env),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def _wait_workers(stack: Stack, broker_url: str, backend_url: str) -> None:
    from celery import Celery

    app = Celery(broker=broker_url, backend=backend_url)
    host = os.uname().nodename
    try:
        for name, process in stack.workers.items():
            node = f"{name}@{host}"
            wait_until(
                lambda node=node: bool(app.control.ping(destination=[node], timeout=1)),
                process=process,
                what=f"{node} answering pings",
            )
    finally:
        app.close()
