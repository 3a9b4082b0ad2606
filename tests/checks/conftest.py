"""Flows written as spec files into an empty DP_FLOWS_DIR, loaded by the real code location; a
live daemon on such a location for the automation tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.dagster_processes import DagsterPlatform
from tests.support.processes import wait_for


def write_flow(folder: Path, spec: dict[str, Any]) -> None:
    (folder / f"{spec['id']}.json").write_text(json.dumps(spec))


@pytest.fixture
def flows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dp_home: Path) -> Path:
    """An empty flows folder as DP_FLOWS_DIR, on a fresh platform home."""
    folder = tmp_path / "flows"
    folder.mkdir()
    monkeypatch.setenv("DP_FLOWS_DIR", str(folder))
    return folder


@contextmanager
def automation_daemon(tmp_path: Path, specs: list[dict[str, Any]], sensor: str) -> Iterator[DaemonSession]:
    """A live ``dagster-daemon`` on the platform's location of ``specs``, past the first tick of
    the automation ``sensor`` (what is missing then is not Dagster's to start), with the test's
    process set to the platform's environment; stopped at the end."""
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    for spec in specs:
        write_flow(flows_dir, spec)
    platform = DagsterPlatform(tmp_path, flows_dir, instance_config={"telemetry": {"enabled": False}})
    daemon = platform.start_daemon()
    try:
        with platform.instance() as instance, pytest.MonkeyPatch.context() as patch:
            for name, value in platform.env.items():
                if name.startswith(("DP_", "DAGSTER_")):
                    patch.setenv(name, value)
            session = DaemonSession(instance, platform, daemon)
            session.wait(f"the first tick of {sensor}", lambda: sensor in platform.logs(20_000))
            yield session
    finally:
        platform.stop()


@dataclass
class DaemonSession:
    instance: Any
    platform: DagsterPlatform
    daemon: Any

    def wait(self, what: str, condition: Callable[[], bool]) -> None:
        wait_for(what, condition, timeout=240, process=self.daemon, on_timeout=self.platform.logs)
