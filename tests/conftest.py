"""Shared fixtures: real services (PostgreSQL, Redis, RabbitMQ) and an isolated platform home.

A test that needs a service skips when the service is down on a developer's machine, and fails
loudly under ``CI=true``: CI must never go green by skipping what it was meant to test
(``tests/support/services.py``). Helpers for live processes are in ``tests/support/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import xdist_groups
from tests.support.dagster_processes import DagsterPlatform, start_make_run
from tests.support.services import (
    PG_ADMIN_URL,
    RABBITMQ_URL,
    REDIS_URL,
    fresh_database,
    require_service,
)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with fresh_database(PG_ADMIN_URL, prefix="dp_test") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return RABBITMQ_URL


@pytest.fixture
def dp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty platform home: SQLite store, data root and outputs under a temporary folder."""
    home = tmp_path / "dp_home"
    (home / "dagster").mkdir(parents=True)
    monkeypatch.setenv("DP_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("DP_STORE_URL", raising=False)
    monkeypatch.delenv("DP_DATA_DIR", raising=False)
    monkeypatch.delenv("DP_OUTPUTS_URL", raising=False)
    return home


#: The fixture of the one `make run` platform the user-session tests share.
MAKE_RUN = "make_run_platform"
_make_run: list[DagsterPlatform] = []


@pytest.fixture(scope="session")
def make_run_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterPlatform]:
    """One ``make run`` (``dp init-home``, ``dagster dev``) on a home in tmp, shared by the tests
    that drive a running platform as a user does (``dp launch --wait``, publish and Reload): one
    start instead of one per module. Each adds its spec files to ``platform.flows`` and reloads
    the location. Its tests run back to back, and it stops after the last of them
    (:func:`pytest_runtest_teardown`), so its daemon does not tick through the rest of the run."""
    platform = start_make_run(tmp_path_factory.mktemp("make_run"))
    _make_run.append(platform)
    try:
        yield platform
    finally:
        _stop_make_run()


def _stop_make_run() -> None:
    while _make_run:
        _make_run.pop().stop(grace_seconds=10)  # a home in tmp: nothing to lose


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if MAKE_RUN in getattr(item, "fixturenames", ()) and MAKE_RUN not in getattr(nextitem, "fixturenames", ()):
        _stop_make_run()


BENCH_TESTS = Path(__file__).resolve().parent / "bench"

#: Session fixtures that start processes (a Dagster platform, webservers, the proxy, an MCP server).
#: Under pytest-xdist (`make test`) the modules that use one of them run on one worker, where it
#: starts once, instead of once per worker.
SHARED_PROCESS_FIXTURES = frozenset({MAKE_RUN, "platform", "webserver", "readonly_webserver", "proxy", "mcp_http"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The bench smoke runs last: it is the suite's most CPU-hungry part, and `make test` runs the
    live stacks beside the rest of the suite, which has finished by then. The tests on the shared
    `make run` platform run back to back, where the first of them was. Under pytest-xdist, the
    modules that start real Dagster processes (the ``e2e`` mark) are handed out first: they are
    the longest, and one of them coming last would leave the other worker idle."""
    users = [item for item in items if MAKE_RUN in getattr(item, "fixturenames", ())]
    if users:
        first = items.index(users[0])
        rest = [item for item in items if MAKE_RUN not in getattr(item, "fixturenames", ())]
        items[:] = rest[:first] + users + rest[first:]
    if xdist_groups.distributed(config):
        xdist_groups.record_units(config, items, SHARED_PROCESS_FIXTURES)
    items.sort(key=lambda item: BENCH_TESTS in Path(str(item.path)).parents)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    xdist_groups.configure_node(node)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under ``--dist loadscope``: whole modules (or groups of them sharing a process fixture) per
    worker, so that their fixtures start their stacks once (tests/support/xdist_groups.py)."""
    return xdist_groups.module_scheduling(config, log)
