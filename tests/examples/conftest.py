"""Fixtures of the example tests: one running platform shared by the tests that need real Dagster
processes (MAX DP's GraphQL launch, SVOps' chain), and a Slack-style webhook that records the
notifications it receives.

The platform (``dagster-webserver`` and ``dagster-daemon`` on a home in tmp, serving the
repository's ``workspace.yaml`` as ``make run`` does) is started once per session (webserver and
daemon start-up is the slow part) and serves a copy of ``flows/svops`` plus the MAX DP example's
data; MAX DP's spec is published into its store by the MAX DP test itself, as a designer would.
Runs start at once (``DefaultRunCoordinator``), each in its own process as in production; sensors
tick every second.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from examples_support import StubService, copy_example

from tests.support.dagster_processes import DagsterPlatform

INSTANCE_YAML = {
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
    "run_monitoring": {"enabled": False},
    "run_retries": {"enabled": False},
    "sensors": {"use_threads": True, "num_workers": 2},
    "schedules": {"use_threads": True, "num_workers": 1},
    "telemetry": {"enabled": False},
    "nux": {"enabled": False},
}


@pytest.fixture(scope="session")
def alerts() -> Iterator[StubService]:
    """A Slack-style incoming webhook: records every POST and answers 200."""
    service = StubService(lambda request: (200, {"ok": True}))
    yield service
    service.close()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, alerts: StubService) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp("examples_platform")
    flows = copy_example(root / "flows", "svops")
    copy_example(flows, "maxdp", specs=False)  # its data; the spec is published by the test
    running = DagsterPlatform(
        root=root,
        flows=flows,
        instance_config=INSTANCE_YAML,
        extra_env={
            "DP_SENSOR_INTERVAL_SECONDS": "1",
            "DP_SECRET_SVOPS_ALERT_WEBHOOK": f"{alerts.url}/services/T000/B000/svops",
        },
    )
    running.start()
    try:
        yield running
    finally:
        running.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests on the shared platform run last and back to back, so its webserver and daemon
    (ticking sensors every second) are up only while they are used. Only this folder's tests
    move, and only among their own places in the run order."""
    here = Path(__file__).resolve().parent
    places = [i for i, item in enumerate(items) if Path(str(item.fspath)).resolve().parent == here]
    ours = sorted((items[i] for i in places), key=lambda item: "platform" in getattr(item, "fixturenames", ()))
    for place, item in zip(places, ours, strict=True):
        items[place] = item
