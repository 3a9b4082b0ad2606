"""Real Dagster processes for the trigger tests: a platform home in tmp, ``dagster-webserver``
and ``dagster-daemon`` started on it, stopped by their own process group.

Waiting is polling with generous bounds; the bounds guard against hangs and never assert speed.
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
from dp_sensors.triggers.policy import concurrency_limits_config

BIN = Path(sys.executable).parent
START_BOUND = 180.0
T = TypeVar("T")



def wait_for(what: str, probe: Callable[[], T], timeout: float = START_BOUND, every: float = 0.5,
             on_timeout: Callable[[], str] | None = None) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out waiting for {what}\n{detail}")
        time.sleep(every)


def instance_yaml(max_concurrent_runs: int = 10, held_flows: tuple[str, ...] = ()) -> dict[str, Any]:
    """An embedded-style instance for tests: SQLite storage (the default), a run queue that
    dequeues every second with the platform's concurrency tags, run retries on, and nothing that
    phones home. Runs of ``held_flows`` are never dequeued (a limit of 0 on their ``dp/flow``
    tag), so a test can count what a sensor asked for without running it."""
    held = [{"key": "dp/flow", "value": flow_id, "limit": 0} for flow_id in held_flows]
    return {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": max_concurrent_runs,
                "dequeue_interval_seconds": 1,
                "tag_concurrency_limits": held + concurrency_limits_config(),
            },
        },
        "run_retries": {"enabled": True, "max_retries": 0},
        "run_monitoring": {"enabled": False},
        "sensors": {"use_threads": True, "num_workers": 2},
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
    }


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return f"--- {self.name} log ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill9(self) -> None:
        """``kill -9`` the process group (the daemon and its code server), then reap it."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=30)

    def stop(self, grace: float = 5.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=grace)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass
class Platform:
    """A DP_HOME with its DAGSTER_HOME, flows folder and the processes started on it."""

    root: Path
    flows: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    max_concurrent_runs: int = 10
    held_flows: tuple[str, ...] = ()
    procs: list[Proc] = field(default_factory=list)
    webserver_port: int | None = None

    def __post_init__(self) -> None:
        self.home = self.root / "dp_home"
        self.dagster_home = self.home / "dagster"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.home / "data").mkdir(exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(self.max_concurrent_runs, self.held_flows)))

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.home / 'store.db'}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
        env.update({
            "DP_HOME": str(self.home),
            "DAGSTER_HOME": str(self.dagster_home),
            "DP_FLOWS_DIR": str(self.flows),
            "DP_SENSOR_INTERVAL_SECONDS": "1",
            "DAGSTER_DISABLE_TELEMETRY": "yes",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def _start(self, name: str, args: list[str]) -> Proc:
        log = self.root / f"{name}-{len(self.procs)}.log"
        handle = log.open("w")
        popen = subprocess.Popen(args, env=self.env, cwd=self.root, stdout=handle, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_daemon(self) -> Proc:
        return self._start("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "dp_assets.definitions"])

    def start_webserver(self) -> Proc:
        self.webserver_port = free_port()
        proc = self._start("webserver", [
            str(BIN / "dagster-webserver"), "-m", "dp_assets.definitions",
            "-h", "127.0.0.1", "-p", str(self.webserver_port),
        ])
        wait_for("the webserver to load the code location", lambda: self._location_loaded(proc),
                 on_timeout=proc.tail)
        return proc

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}/graphql"

    def _location_loaded(self, proc: Proc) -> bool:
        if not proc.alive():
            raise AssertionError(f"the webserver exited\n{proc.tail()}")
        query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus locationOrLoadError { __typename } } } } }"
        try:
            data = httpx.post(self.graphql_url, json={"query": query}, timeout=5).json()["data"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        return bool(entries) and all(
            e["loadStatus"] == "LOADED" and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
            for e in entries
        )

    def instance(self) -> Any:
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def logs(self) -> str:
        return "\n".join(proc.tail() for proc in self.procs)


def sensor_cursor(instance: Any, sensor_name: str) -> str | None:
    """The stored cursor of a sensor, ``None`` before its first tick stored one."""
    from dagster._core.scheduler.instigation import InstigatorType as Kind

    for state in instance.all_instigator_state(instigator_type=Kind.SENSOR):
        if state.name == sensor_name and state.instigator_data is not None:
            return state.instigator_data.cursor
    return None
