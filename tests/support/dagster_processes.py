"""Dagster's own processes for a test, on a platform home in a temporary folder.

:class:`DagsterPlatform` is a ``DP_HOME`` (with its ``DAGSTER_HOME`` and a flows folder) and the
``dagster-webserver``, ``dagster-daemon`` or ``dagster dev`` processes started on it, each in its
own process group (:mod:`tests.support.processes`). By default they serve the platform's code
location from the repository's ``workspace.yaml``, as ``make run`` does; :func:`start_make_run`
starts what ``make run`` starts (``dp init-home``, then ``dagster dev``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from dp_assets.cli.home import local_storage
from tests.support.processes import (
    BIN,
    PYTHON,
    REPO_ROOT,
    ManagedProcess,
    free_port,
    start_process,
    stop_all,
    wait_for,
)

#: What ``make run`` serves, and the name of the platform's code location in it.
WORKSPACE = REPO_ROOT / "workspace.yaml"
LOCATION = "dp_platform"
LOCATION_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename } } } } }"
)


def location_loaded(graphql_url: str, name: str | None = None) -> bool:
    """Whether the webserver at ``graphql_url`` has loaded its code locations (or the one
    called ``name``); False while it does not answer yet."""
    try:
        response = httpx.post(graphql_url, json={"query": LOCATION_QUERY}, timeout=5)
        entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    entries = [e for e in entries if name is None or e["name"] == name]
    return bool(entries) and all(
        e["loadStatus"] == "LOADED" and (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
        for e in entries
    )


@dataclass
class DagsterPlatform:
    """A platform home in ``root`` and the Dagster processes started on it.

    ``instance_config`` is written to ``dagster.yaml`` (None: the caller writes it, e.g. with
    ``dp init-home``); ``target`` is what the processes load (a workspace or ``-m module``);
    ``extra_env`` is added to the environment every process gets.
    """

    root: Path
    flows: Path
    instance_config: Mapping[str, Any] | None = None
    target: Sequence[str] = ("-w", str(WORKSPACE))
    extra_env: Mapping[str, str] = field(default_factory=dict)
    start_bound_seconds: float = 240.0
    processes: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.root / "dp_home"
        self.dagster_home = self.home / "dagster"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.home / "data").mkdir(exist_ok=True)
        if self.instance_config is not None:
            (self.dagster_home / "dagster.yaml").write_text(yaml.safe_dump(dict(self.instance_config)))
        self.webserver_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    @property
    def graphql_url(self) -> str:
        return f"{self.url}/graphql"

    @property
    def store_url(self) -> str:
        """The flow store of the embedded default (``DP_STORE_URL`` unset)."""
        return f"sqlite:///{self.home / 'store.db'}"

    @property
    def env(self) -> dict[str, str]:
        """The test's environment without its own ``DP_*``/``DAGSTER_*`` settings, on this home."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
        env.update(
            {
                "DP_HOME": str(self.home),
                "DAGSTER_HOME": str(self.dagster_home),
                "DP_FLOWS_DIR": str(self.flows),
                "DP_WEBSERVER_URL": self.url,  # run links in notifications point at this webserver
                "DAGSTER_DISABLE_TELEMETRY": "yes",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _start(self, name: str, argv: list[str]) -> ManagedProcess:
        if not self.processes:
            self._create_storages()
        process = start_process(name, argv, env=self.env, log_dir=self.root / "logs", cwd=self.root)
        self.processes.append(process)
        return process

    def _create_storages(self) -> None:
        """Create the instance's storages before the first process starts: two processes (or a
        process and this test) creating SQLite storages at once can both stamp the schema version
        ("alembic_version has more than one head"), and the loser never loads. A home whose
        ``dagster.yaml`` a started process writes (``dp init-home``) is left to that process."""
        if not (self.dagster_home / "dagster.yaml").exists():
            return
        with self.instance() as instance:
            instance.get_runs_count()
            instance.all_instigator_state()

    def _wait_loaded(self, process: ManagedProcess) -> None:
        """Wait until the webserver ``process`` serves has loaded the location; stop all if not."""
        try:
            wait_for(
                "the webserver to load the code location",
                lambda: location_loaded(self.graphql_url),
                timeout=self.start_bound_seconds,
                process=process,
                on_timeout=self.logs,
            )
        except BaseException:
            self.stop()
            raise

    def _webserver_argv(self) -> list[str]:
        return [str(BIN / "dagster-webserver"), *self.target, "-h", "127.0.0.1", "-p", str(self.webserver_port)]

    def start(self, daemon: bool = True) -> DagsterPlatform:
        """Webserver and daemon at once; returns when the webserver has loaded the location."""
        web = self._start("webserver", self._webserver_argv())
        if daemon:
            self.start_daemon()
        self._wait_loaded(web)
        return self

    def start_webserver(self) -> ManagedProcess:
        """The webserver alone; returns when it has loaded the location."""
        process = self._start("webserver", self._webserver_argv())
        self._wait_loaded(process)
        return process

    def start_daemon(self) -> ManagedProcess:
        """The daemon (sensors, schedules, run queue); not waited for."""
        return self._start("daemon", [str(BIN / "dagster-daemon"), "run", *self.target])

    def start_dev(self) -> ManagedProcess:
        """``dagster dev`` (webserver and daemon in one), as ``make run`` starts it."""
        process = self._start(
            "dagster-dev",
            [str(BIN / "dagster"), "dev", *self.target, "-h", "127.0.0.1", "-p", str(self.webserver_port)],
        )
        self._wait_loaded(process)
        return process

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(self.graphql_url, json={"query": query, "variables": dict(variables or {})}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def reload_location(self, name: str = LOCATION) -> None:
        """What the UI's Reload button does: the location compiles the store's published flows again."""
        data = self.graphql(
            "mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) "
            "{ __typename ... on PythonError { message } } }",
            {"name": name},
        )
        assert data["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry", data
        wait_for("the reloaded code location", lambda: location_loaded(self.graphql_url, name), on_timeout=self.logs)

    def cli_env(self) -> dict[str, str | None]:
        """Environment of a ``dp`` command run against this platform (CliRunner applies it per call)."""
        return {
            "DP_HOME": str(self.home),
            "DAGSTER_HOME": str(self.dagster_home),
            "DP_FLOWS_DIR": str(self.flows),
            "DP_STORE_URL": None,
            "DP_DATA_DIR": None,
            "DP_OUTPUTS_URL": None,
            "DP_DAGSTER_GRAPHQL_URL": self.graphql_url,
        }

    def instance(self) -> Any:
        """The platform's Dagster instance in the test process (use it as a context manager)."""
        import dagster as dg

        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def start_designer(self) -> str:
        """``dp designer`` on this home, launching through this webserver (what ``make run``
        starts beside it); its URL once its API answers. Stopped with the platform."""
        port = free_port()
        env = {**self.env, "DP_DAGSTER_GRAPHQL_URL": self.graphql_url, "DP_WEBSERVER_URL": self.url}
        argv = [str(BIN / "dp"), "designer", "--port", str(port)]
        process = start_process("designer", argv, env=env, log_dir=self.root / "logs")
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_for("dp designer to serve", lambda: _answers(f"{url}/api/flows"), process=process, timeout=120)
        return url

    def stop(self, grace_seconds: float = 20) -> None:
        stop_all(self.processes, grace_seconds)

    def logs(self, chars: int = 4000) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail(chars)}" for p in self.processes)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def start_make_run(root: Path) -> DagsterPlatform:
    """What ``make run`` starts, on a home in ``root`` serving the (empty) flows folder
    ``root/flows``: ``dp init-home``, then ``dagster dev``. A test adds spec files to
    ``platform.flows`` and calls :meth:`DagsterPlatform.reload_location`, as a user does."""
    flows = root / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    platform = DagsterPlatform(root=root, flows=flows)
    subprocess.run([PYTHON, "-m", "dp_assets.cli", "init-home"], env=platform.env, check=True, cwd=REPO_ROOT)
    platform.start_dev()
    return platform


def warm_launcher_platform(
    root: Path, location: Path, *, max_workers: int, run_coordinator: Mapping[str, Any]
) -> DagsterPlatform:
    """A platform on the embedded storage whose runs go to the warm run launcher (``max_workers``
    at once), with run monitoring every second, loading the code in ``location`` (a file in its
    own folder) and queueing through ``run_coordinator`` (a ``dagster.yaml`` entry)."""
    config = {
        "telemetry": {"enabled": False},
        **yaml.safe_load(local_storage(root / "dp_home" / "dagster")),
        "run_launcher": {
            "module": "dp_instance.warm_launcher",
            "class": "WarmRunLauncher",
            "config": {"max_workers": max_workers},
        },
        "run_coordinator": dict(run_coordinator),
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 1, "max_resume_run_attempts": 0},
    }
    return DagsterPlatform(
        root, flows=root / "flows", instance_config=config, target=("-f", str(location), "-d", str(location.parent))
    )
