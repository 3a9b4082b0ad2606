"""The machine's services the tests and the benchmarks use: PostgreSQL, Redis, RabbitMQ.

A test that needs a service skips when it is down on a developer's machine, and fails loudly
under ``CI=true``: CI must never go green by skipping what it was meant to test. Each user of
PostgreSQL gets a database of its own (:func:`fresh_database`), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from tests.support.processes import port_open

#: The local PostgreSQL server the tests and the bench make their databases on.
PG_ADMIN_URL = os.environ.get("DP_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("DP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def unavailable(message: str) -> NoReturn:
    """Skip on a developer's machine; fail under CI, which must not go green by skipping."""
    import pytest  # only a test calls this; the bench imports this module without pytest's cost

    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: service tests must not skip)")
    pytest.skip(message)


def require_service(name: str, host: str, port: int) -> None:
    """Go on when ``host:port`` accepts connections; otherwise :func:`unavailable`."""
    if not port_open(host, port):
        unavailable(f"{name} is not reachable on {host}:{port}")


def postgres_up(postgres_url: str = PG_ADMIN_URL) -> bool:
    """Whether ``postgres_url``'s server accepts connections."""
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    return port_open(url.host or "127.0.0.1", url.port or 5432)


@contextmanager
def fresh_database(postgres_url: str = PG_ADMIN_URL, prefix: str = "dp_bench") -> Iterator[str]:
    """A new, empty PostgreSQL database on ``postgres_url``'s server, dropped afterwards; yields
    its URL."""
    import sqlalchemy as sa

    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # NullPool: a fault test may restart the server in between; no stale pooled connection.
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
