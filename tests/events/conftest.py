"""Fixtures for the event bus and the receiver: every backend is a real service, every server a
real uvicorn on loopback.

Each test gets empty storage: a fresh SQLite file, a fresh PostgreSQL schema inside the
session's database (``search_path`` in the URL), or a fresh Redis stream name.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from dp_sensors.events.base import EventBus
from dp_sensors.events.redis_stream import RedisStreamEventBus
from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook.server import serve_in_thread

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@contextmanager
def _private_schema(postgres_url: str) -> Iterator[str]:
    """A URL of ``postgres_url`` whose ``search_path`` is a new schema, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_schema_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL of the session database whose ``search_path`` is a schema of this test alone."""
    with _private_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="module")
def pg_schema_url_module(request: pytest.FixtureRequest) -> Iterator[str]:
    """As ``pg_schema_url``, one schema for the whole module (for module-scoped platforms)."""
    with _private_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
def redis_stream(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(redis_url, stream)`` with a stream name of this test alone; its keys go afterwards."""
    url = request.getfixturevalue("redis_url")
    stream = f"dp:test:{uuid.uuid4().hex[:12]}"
    yield url, stream
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{stream}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def make_bus(request: pytest.FixtureRequest, name: str) -> EventBus:
    if name == "redis":
        url, stream = request.getfixturevalue("redis_stream")
        return RedisStreamEventBus(url, stream=stream)
    url = request.getfixturevalue("sqlite_url" if name == "sqlite" else "pg_schema_url")
    return SqlEventBus(url)


@pytest.fixture(params=BACKENDS)
def bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    """An empty bus of each adapter; the contract tests run once per adapter."""
    instance = make_bus(request, request.param)
    instance.ensure_schema()
    yield instance
    instance.close()


@pytest.fixture
def start_server() -> Iterator[Callable[..., str]]:
    """Start an ASGI app under real uvicorn on a free loopback port; stopped after the test."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_in_thread(app))
