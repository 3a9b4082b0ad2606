"""The embedded default's storage: SQLite, written without per-operation setup.

Dagster's default SQLite storage opens a new database file (and creates its schema) for every
run's events, and every storage operation builds a new SQLAlchemy engine, opens a connection and
closes it again. In WAL mode closing the last connection to a file checkpoints the log into the
database (an fsync) and deletes it, so the next commit creates it again: on the embedded default
a node's three events cost more than most nodes' work (docs/benchmarks.md, workloads 1 and 2).
These classes are Dagster's ``ConsolidatedSqliteEventLogStorage`` (one file for every run, same
schema, same watchers for the UI), ``SqliteRunStorage`` and ``SqliteScheduleStorage`` with:

- one engine per storage object whose pool keeps two connections open between operations (more
  while concurrent requests need them, closed after use), so commits append to a WAL that stays
  in place (SQLite still checkpoints it every 1,000 pages);
- a fork-safe pool: a forked child (a node's time limit, a run worker started by fork) starts
  with an empty pool and never touches, nor closes, the connections it inherited;
- the schema questions Dagster asks on every asset event and run-status change (does this
  table, column, index exist?) answered once (both from ``dp_instance.sql_storage``);
- a run event stored after the run's status it reports (``dp_instance.run_event_order``);
- ``PRAGMA synchronous=NORMAL``: in WAL mode (which Dagster sets on the files) a crash of any
  process loses nothing and never corrupts a file; only a power cut can lose the last commits.

Production uses PostgreSQL (the top-level dagster.yaml); this is for ``make run`` and tests.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import (
    AbstractContextManager,
    _GeneratorContextManager,  # what the parents' @contextmanager methods return
    contextmanager,
)
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from filelock import FileLock
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from dp_instance.launch_lock import file_launch_lock
from dp_instance.run_event_order import is_run_event, write_run_status
from dp_instance.sql_storage import KeptEventLogSchema, KeptRunSchema, KeptScheduleSchema, fork_safe

#: Longest a process waits for another to finish creating or migrating a database.
FIRST_OPEN_LOCK_SECONDS = 300


@contextmanager
def first_open_lock(base_dir: str) -> Iterator[None]:
    """One process at a time creates or migrates the SQLite databases in ``base_dir``.

    Dagster creates and stamps a database on first open without a lock: two processes opening a
    new home at once (two first runs, ``dagster dev`` beside a ``dp`` command) each ran the
    migrations and left ``runs.db`` with two Alembic heads, after which every run failed. The
    lock is held only while a storage object is constructed, never while it is used.
    """
    os.makedirs(base_dir, exist_ok=True)
    with FileLock(os.path.join(base_dir, ".dp-first-open.lock"), timeout=FIRST_OPEN_LOCK_SECONDS):
        yield


def pooled_sqlite_engine(conn_string: str) -> sa.Engine:
    """An engine whose connections stay open between operations and are not shared across fork."""
    engine = sa.create_engine(
        conn_string, pool_size=2, max_overflow=-1, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    )

    @sa.event.listens_for(engine, "connect")
    def _relaxed_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return fork_safe(engine)


class _KeptConnections:
    """What both storages share: the pooled engine, a transaction on it, and its disposal."""

    _conn_string: str

    @cached_property
    def _engine(self) -> sa.Engine:
        return pooled_sqlite_engine(self._conn_string)

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        if "_engine" in self.__dict__:
            self._engine.dispose()


class EmbeddedEventLogStorage(KeptEventLogSchema, _KeptConnections, ConsolidatedSqliteEventLogStorage):
    # Dagster's __init__ sets None (typed None, for want of an annotation); watch() starts one.
    _obs: BaseObserver | None  # type: ignore[assignment]

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> Any:
        # The whole construction: a second process must not see a database file that the first
        # one has created but not yet migrated.
        with first_open_lock(config_value["base_dir"]):
            return cls(inst_data=inst_data, **config_value)

    def _connect(self) -> _GeneratorContextManager[sa.Connection]:  # every read and write goes here
        return self._transaction()

    @property
    def handles_run_events_in_store_event(self) -> bool:
        return self.has_instance  # see store_event

    def store_event(self, event: EventLogEntry) -> None:
        if self.has_instance and is_run_event(event):
            write_run_status(self._instance, event)
        super().store_event(event)

    def has_table(self, table_name: str) -> bool:
        # Dagster's SQLite event log opens a new engine and connection for each of these questions.
        with self._engine.connect() as conn:
            return bool(self._engine.dialect.has_table(conn, table_name))

    def watch(self, run_id: str, cursor: Any, callback: Any) -> None:
        # As the parent, but the UI's live event stream wakes on the WAL too: with connections
        # kept open, a commit appends to ``events.db-wal`` and leaves ``events.db`` untouched
        # until the next checkpoint.
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
            self._obs.schedule(_DatabaseOrLogModified(self), self._base_dir, recursive=True)
        self._watchers[run_id][callback] = cursor


class _DatabaseOrLogModified(PatternMatchingEventHandler):
    """Reads the watched runs' new events when the database or its WAL changes, and once more a
    moment after the last change of a burst: a change notice can arrive before the commit that
    caused it is complete (SQLite appends a transaction's pages, then its commit frame), and the
    kernel merges notices for a file while one waits, so a run's last events could stay unread
    until the next write (the UI showed a finished run without its RUN_SUCCESS under load)."""

    SETTLE_SECONDS = 0.25

    def __init__(self, storage: EmbeddedEventLogStorage) -> None:
        database = storage.get_db_path()
        super().__init__(patterns=[database, f"{database}-wal"])
        self._storage = storage
        self._reading = threading.Lock()  # one reader at a time: each advances the watchers' cursors
        self._settle: threading.Timer | None = None

    def on_modified(self, event: Any) -> None:
        self._read()
        with self._reading:
            if self._settle is not None:
                self._settle.cancel()
            self._settle = threading.Timer(self.SETTLE_SECONDS, self._read)
            self._settle.daemon = True
            self._settle.start()

    def _read(self) -> None:
        with self._reading:
            self._storage.on_modified()


class _KeptConnectionsFromLocal(_KeptConnections):
    """The run and schedule storage: ``connect`` serves every read and write."""

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> Any:
        # The parents hard-code their own class here.
        with first_open_lock(config_value["base_dir"]):
            return cls.from_local(inst_data=inst_data, **config_value)  # type: ignore[attr-defined]

    def connect(self) -> _GeneratorContextManager[sa.Connection]:
        return self._transaction()


class EmbeddedRunStorage(KeptRunSchema, _KeptConnectionsFromLocal, SqliteRunStorage):
    """Runs, their tags and status changes on kept connections."""

    def launch_lock(self) -> AbstractContextManager[bool]:
        """The run queue's lock (``dp_instance/launch_lock.py``): a lock file beside ``runs.db``."""
        database = sa.engine.make_url(self._conn_string).database
        return file_launch_lock(os.path.dirname(os.path.abspath(database or ".")))


class EmbeddedScheduleStorage(KeptScheduleSchema, _KeptConnectionsFromLocal, SqliteScheduleStorage):
    """Sensor and schedule ticks (the daemon writes several rows per tick) on kept connections."""
