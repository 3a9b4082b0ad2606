"""Fixtures for node tests: node contexts, real peers on loopback (HTTP, SMTP), real databases.

The HTTP server is ``http.server`` in a thread with a programmable handler; the SMTP server is
``aiosmtpd``; PostgreSQL is the real service (``postgres_url`` from the root conftest), with a
read-only login role made here for the V2 tests; SQLite is a file in ``tmp_path``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from node_helpers import COLLECTED, Inbox, LoopbackServer

from tests.support.processes import free_port


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Remember the ids of every collected test, for the completeness test."""
    COLLECTED[:] = [item.nodeid for item in items]


@pytest.fixture
def http_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def http_resource() -> Any:
    """An HttpResource that allows only the loopback address the test servers use."""
    from dp_resources.http import HttpResource

    return HttpResource(allowed_networks=["127.0.0.1/32"], timeout_seconds=20)


# --- SMTP ------------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, int, Inbox]]:
    from aiosmtpd.controller import Controller

    port = free_port()  # aiosmtpd needs a real port number to check it started
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, inbox
    finally:
        controller.stop()


# --- databases -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_readonly_url(postgres_url: str) -> Iterator[str]:
    """A login role with SELECT rights only, for user SQL (V2); dropped after the session."""
    import sqlalchemy as sa

    role = f"dp_ro_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    database = postgres_url.rsplit("/", 1)[1]
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
        conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA public TO "{role}"')
        conn.exec_driver_sql(f'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO "{role}"')
        conn.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    prefix, rest = postgres_url.split("://", 1)
    host = rest.split("@", 1)[1]
    try:
        yield f"{prefix}://{role}@{host}"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM "{role}"')
            conn.exec_driver_sql(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"')
            conn.exec_driver_sql(f'REVOKE ALL ON SCHEMA public FROM "{role}"')
            conn.exec_driver_sql(f'REVOKE ALL ON DATABASE "{database}" FROM "{role}"')
            conn.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        engine.dispose()


@pytest.fixture
def pg_databases(postgres_url: str, pg_readonly_url: str) -> Iterator[Any]:
    from dp_resources.databases import DatabasesResource

    resource = DatabasesResource(
        urls={"default": postgres_url, "rw": postgres_url},
        query_urls={"default": pg_readonly_url},
        writable_sql=["rw"],
        statement_timeout_ms=2000,
    )
    try:
        yield resource
    finally:
        resource.dispose()


@pytest.fixture
def sqlite_databases(tmp_path: Any) -> Iterator[Any]:
    from dp_resources.databases import DatabasesResource

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    resource = DatabasesResource(urls={"default": url, "rw": url}, writable_sql=["rw"])
    try:
        yield resource
    finally:
        resource.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def databases(request: pytest.FixtureRequest) -> Any:
    """The same tests on the real PostgreSQL and on SQLite."""
    return request.getfixturevalue("pg_databases" if request.param == "postgres" else "sqlite_databases")
