"""The embedded default's event log: one SQLite file for every run, written without per-event setup.

Dagster's default SQLite event log opens a new database file (and creates its schema) for every
run, and every storage operation builds a new SQLAlchemy engine and fsyncs its commit. On the
embedded default a flow's node costs three events, so that bookkeeping, not the node, was most
of a run's time (docs/benchmarks.md, workload 1). This storage is Dagster's
``ConsolidatedSqliteEventLogStorage`` (one file, same schema, same watchers for the UI) with:

- one engine per storage object (still ``NullPool``: no connection outlives an operation, so
  it is safe across the forks of run workers and node timeouts);
- ``PRAGMA synchronous=NORMAL``: in WAL mode (which Dagster sets on the file) a crash of any
  process loses nothing and never corrupts the file; only a power cut can lose the last commits.

Production uses PostgreSQL (the top-level dagster.yaml); this is for ``make run`` and tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.pool import NullPool


class EmbeddedEventLogStorage(ConsolidatedSqliteEventLogStorage):
    @cached_property
    def _engine(self) -> sa.Engine:
        engine = sa.create_engine(
            self._conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )

        @sa.event.listens_for(engine, "connect")
        def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn
