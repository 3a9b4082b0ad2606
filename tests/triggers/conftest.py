"""Fixtures for trigger tests: flows compiled from spec dicts, a real Dagster instance in tmp,
and real event buses (SQLite file, Redis stream of this test alone)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis

from dp_resources.files import FilesResource
from dp_sensors.events import EventBusResource


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A real local instance (SQLite storage) in tmp, shared by a module's tests (creating one
    costs seconds); tests use flow ids of their own so their runs do not meet."""
    folder = tmp_path_factory.mktemp("dagster")
    with dg.instance_for_test(temp_dir=str(folder)) as inst:
        yield inst


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def bus_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty event bus of each adapter: a SQLite file, or a Redis stream of this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'events.db'}"
        return
    url = request.getfixturevalue("redis_url")
    stream = f"dp:test:triggers:{uuid.uuid4().hex[:12]}"
    yield f"{url}?stream={stream}"
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{stream}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def event_bus(bus_url: str) -> EventBusResource:
    return EventBusResource(url=bus_url)


@pytest.fixture
def files(tmp_path: Path) -> FilesResource:
    (tmp_path / "data").mkdir()
    return FilesResource(data_dir=str(tmp_path / "data"))
