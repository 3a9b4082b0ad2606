"""Shared fixtures: real services (PostgreSQL, Redis, RabbitMQ) and an isolated platform home.

A test that needs a service skips when the service is down on a developer's machine, and fails
loudly under ``CI=true``: CI must never go green by skipping what it was meant to test
(``tests/support/services.py``). Helpers for live processes are in ``tests/support/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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


BENCH_TESTS = Path(__file__).resolve().parent / "bench"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The bench smoke runs last: it is the suite's most CPU-hungry part, and `make test` runs the
    live stacks beside the rest of the suite, which has finished by then."""
    items.sort(key=lambda item: BENCH_TESTS in Path(str(item.path)).parents)
