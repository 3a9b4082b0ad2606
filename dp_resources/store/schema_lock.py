"""One process at a time creates or migrates the flow store's schema.

Processes that start together on an empty store (a webserver, a daemon, code servers, ``dp
publish``) would otherwise all see no schema and all create it: on PostgreSQL the losers fail
with a unique violation in the catalog (``pg_type``), on SQLite with "table already exists", and
two ``alembic_version`` rows would leave the store with two heads. PostgreSQL serialises them with
a session-level advisory lock on a connection of its own (the lock outlives the migration's
transactions and is gone with the session if the process dies); SQLite with a file lock beside
the database file (``filelock``: released by the operating system when the holder dies).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from filelock import FileLock, Timeout

#: Advisory lock key of the store's schema (advisory locks are per database; any fixed number).
ADVISORY_KEY = zlib.crc32(b"dp-platform flow store schema")
#: How long a starting process waits for another one's migration before giving up.
WAIT_SECONDS = 120


class SchemaLockTimeout(RuntimeError):
    pass


@contextmanager
def schema_lock(engine: sa.Engine, wait_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    """Held around creating or migrating the schema of the store at ``engine``."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, wait_seconds):
            yield
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        lock = FileLock(f"{engine.url.database}.migrate.lock", timeout=wait_seconds)
        try:
            lock.acquire()
        except Timeout:
            raise SchemaLockTimeout(_waited(engine, wait_seconds, f"the lock file {lock.lock_file}")) from None
        try:
            yield
        finally:
            lock.release()
    else:
        yield


@contextmanager
def _advisory_lock(engine: sa.Engine, wait_seconds: float) -> Iterator[None]:
    with engine.connect() as conn:
        try:
            with conn.begin():
                # SET LOCAL: the pooled connection keeps no timeout; the lock itself is the session's.
                conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(wait_seconds * 1000)}ms'"))
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        except sa.exc.OperationalError as exc:
            if "lock timeout" in str(exc):
                raise SchemaLockTimeout(_waited(engine, wait_seconds, "its advisory lock")) from None
            raise
        try:
            yield
        finally:
            try:
                with conn.begin():
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            except sa.exc.DBAPIError:
                conn.invalidate()  # closing the session releases the lock; never pool it held


def _waited(engine: sa.Engine, wait_seconds: float, what: str) -> str:
    where = engine.url.render_as_string(hide_password=True)
    return (
        f"the flow store at {where} is being created or migrated by another process: waited "
        f"{wait_seconds:.0f} s for {what}; if no other process is running, start again"
    )
