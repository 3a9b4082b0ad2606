"""A running platform for the example tests: ``dagster-webserver`` and ``dagster-daemon`` processes
on a home in tmp, serving the platform's own code location from the repository's
``workspace.yaml`` (location ``dp_platform``), as ``make run`` does.

Runs start at once (``DefaultRunCoordinator``), each in its own process as in production; sensors
tick every second. Processes get their own process group and are stopped by it. Waiting is
polling with generous bounds that guard against hangs and never assert speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from bench.harness import free_port

BIN = Path(sys.executable).parent
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"  # what `make run` serves
LOCATION = "dp_platform"
BOUND = 240.0
T = TypeVar("T")

INSTANCE_YAML = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    "run_monitoring": {"enabled": False},
    "run_retries": {"enabled": False},
    "sensors": {"use_threads": True, "num_workers": 2},
    "schedules": {"use_threads": True, "num_workers": 1},
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
}



def wait_for(what: str, probe: Callable[[], T], timeout: float = BOUND, every: float = 0.5,
             detail: Callable[[], str] | None = None) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{detail() if detail else ''}")
        time.sleep(every)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 4000) -> str:
        try:
            return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=grace)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)


@dataclass
class Platform:
    root: Path
    flows: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.home = self.root / "dp_home"
        self.dagster_home = self.home / "dagster"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(INSTANCE_YAML))
        self.port = free_port()

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
        env.update({
            "DP_HOME": str(self.home), "DAGSTER_HOME": str(self.dagster_home), "DP_FLOWS_DIR": str(self.flows),
            "DP_SENSOR_INTERVAL_SECONDS": "1", "DP_WEBSERVER_URL": self.url,
            "DAGSTER_DISABLE_TELEMETRY": "yes", "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    def _start(self, name: str, args: list[str]) -> Process:
        log = self.root / f"{name}.log"
        popen = subprocess.Popen(args, env=self.env, cwd=self.root, stdout=log.open("w"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def start(self, daemon: bool = True) -> Platform:
        # Create the SQLite storages first: two processes creating them at once can both stamp
        # the schema version ("alembic_version has more than one head").
        with self.instance() as instance:
            instance.get_runs_count()
            instance.all_instigator_state()
        try:
            web = self._start("webserver", [str(BIN / "dagster-webserver"), "-w", str(WORKSPACE),
                                            "-h", "127.0.0.1", "-p", str(self.port)])
            if daemon:
                self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
            wait_for("the webserver to load the code location", lambda: self.location_loaded(web), detail=self.logs)
        except BaseException:
            self.stop()
            raise
        return self

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(self.graphql_url, json={"query": query, "variables": dict(variables or {})}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def location_loaded(self, web: Process | None = None) -> bool:
        if web is not None and not web.alive():
            raise AssertionError(f"the webserver exited\n{web.tail()}")
        query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus locationOrLoadError { __typename } } } } }"
        try:
            entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        return bool(entries) and all(
            e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def reload_location(self) -> None:
        """What the UI's Reload button does: the location compiles the store's published flows again."""
        data = self.graphql(
            "mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) "
            "{ __typename ... on PythonError { message } } }", {"name": LOCATION})
        assert data["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry", data
        wait_for("the reloaded code location", self.location_loaded, detail=self.logs)

    def cli_env(self) -> dict[str, str | None]:
        """Environment of a `dp` command run against this platform (CliRunner applies it per call)."""
        return {"DP_HOME": str(self.home), "DAGSTER_HOME": str(self.dagster_home), "DP_FLOWS_DIR": str(self.flows),
                "DP_STORE_URL": None, "DP_DATA_DIR": None, "DP_OUTPUTS_URL": None,
                "DP_DAGSTER_GRAPHQL_URL": self.graphql_url}

    def instance(self) -> Any:
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def stop(self) -> None:
        """SIGTERM to every process group at once, then wait for each (SIGKILL after a grace)."""
        for process in self.processes:
            if process.alive():
                try:
                    os.killpg(process.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.processes)
