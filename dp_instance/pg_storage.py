"""Dagster's PostgreSQL storage, made to survive a short database outage in the middle of a run.

dagster-postgres retries *opening* a connection for about 6 s, but a statement whose connection
the server drops (a restart, a fail-over, a killed backend) fails at once, and when that statement
is a step's event, or a step's read of its inputs' versions, the step fails and takes the run
with it (F4 in docs/deploy.md: a 3 s outage failed a run both ways). Here the writes a run makes
while it executes are retried on a fresh connection: an event (one autocommitted INSERT, then
its asset index in one transaction) and a run-status update (idempotent); and so is every read
of the run and event-log storage (``get_*``, ``fetch_*``, ``has_*``, ...: nothing to undo). The
NOTIFY that dagster-postgres sends after each event is dropped: its own comment says nothing
listens since its event watcher polls, and sending it on a second statement is what made a
committed INSERT look failed (a retry would then duplicate it). A run event is stored after the
run's status (``dp_instance.run_event_order``).

All three storages (runs, event log, schedules) also share one pooled connection per process
instead of a new connection per operation, and answer Dagster's per-event schema questions once
(``dp_instance.sql_storage``; docs/deploy.md, "One kept connection per process").

Configured in dagster.yaml as ``storage: custom:`` with the same ``postgres_db`` fields as
``storage: postgres:``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy as sa
from dagster import DagsterEvent
from dagster._config.config_schema import UserConfigSchema
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import PostgresStorageConfig, pg_config
from dagster._core.storage.event_log import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import (
    DagsterPostgresException,
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

from dp_instance.launch_lock import advisory_launch_lock
from dp_instance.run_event_order import is_run_event, write_run_status
from dp_instance.sql_storage import KeptEventLogSchema, KeptRunSchema, KeptScheduleSchema, fork_safe

if TYPE_CHECKING:
    from dagster_postgres.auth import PgTokenProvider

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Attempts of one write or read, each after dagster-postgres' own ~6 s of connection retries:
#: it waits out an outage of about 20 s before it fails.
ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 1.0
_retrying = threading.local()  # set while this thread runs an operation under retry


def _lost_connection(exc: BaseException) -> bool:
    if isinstance(exc, DagsterPostgresException):  # dagster-postgres gave up connecting
        return True
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError)


def retry_on_lost_connection(operation: Callable[[], T], what: str) -> T:
    """Run ``operation``; when the server dropped its connection, run it again on a new one.

    Not nested: a read inside a retried operation is retried by the outermost one only, so an
    outage costs at most ``ATTEMPTS`` attempts, not their product."""
    if getattr(_retrying, "active", False):
        return operation()
    _retrying.active = True
    try:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return operation()
            except Exception as exc:
                if attempt == ATTEMPTS or not _lost_connection(exc):
                    raise
                log.warning(
                    "PostgreSQL lost the connection %s (attempt %d): %s", what, attempt, str(exc).splitlines()[0]
                )
                time.sleep(RETRY_PAUSE_SECONDS * attempt)
        raise AssertionError("unreachable")
    finally:
        _retrying.active = False


#: Method names of the run and event-log storage that only read (retrying them is harmless).
READ_PREFIXES = ("get_", "fetch_", "has_", "all_", "can_read_")


def retrying_reads(cls: type[T]) -> type[T]:
    """Wrap every read method of ``cls`` (found by name) in :func:`retry_on_lost_connection`."""
    names = {
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if name.startswith(READ_PREFIXES) and inspect.isfunction(value)
    }
    for name in names:
        setattr(cls, name, _retried_read(getattr(cls, name), name))
    return cls


def _retried_read(read: Callable[..., T], name: str) -> Callable[..., T]:
    @functools.wraps(read)
    def retried(self: object, *args: object, **kwargs: object) -> T:
        return retry_on_lost_connection(lambda: read(self, *args, **kwargs), f"reading ({name})")

    return retried


_SHARED_ENGINES: dict[str, sa.Engine] = {}
_SHARED_ENGINES_LOCK = threading.Lock()


def _pooled_pg_engine(postgres_url: str, token_provider: PgTokenProvider | None) -> sa.Engine:
    """Keeps one connection between operations, opens more while threads need them at once and
    closes those after use, checks a kept connection before handing it out (a server restart
    leaves it dead), and is fork-safe."""
    return fork_safe(
        create_pg_engine(
            postgres_url, token_provider, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=-1, pool_pre_ping=True
        )
    )


def shared_pg_engine(postgres_url: str, token_provider: PgTokenProvider | None = None) -> sa.Engine:
    """The process's pooled engine for ``postgres_url``, shared by the run, event-log and schedule
    storage of every instance the process opens (a run worker, a Celery task and the daemon's
    threads each open their own). With a token provider (``auth_provider``), which every
    instance builds anew, the storage gets a pooled engine of its own, disposed with it."""
    if token_provider is not None:
        return _pooled_pg_engine(postgres_url, token_provider)
    with _SHARED_ENGINES_LOCK:
        if postgres_url not in _SHARED_ENGINES:
            _SHARED_ENGINES[postgres_url] = _pooled_pg_engine(postgres_url, None)
        return _SHARED_ENGINES[postgres_url]


class _SharedPool:
    """Dagster's PostgreSQL storage opens a connection per operation (``NullPool``): 624 for a
    run of 50 nodes, most of the run's time. These use the process's shared pool instead; the
    webserver's own pool (``optimize_for_webserver``) is left as Dagster makes it."""

    postgres_url: str
    _token_provider: PgTokenProvider | None
    _engine: sa.Engine

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # dagster-postgres' storage: creates the tables if need be
        self._engine = shared_pg_engine(self.postgres_url, self._token_provider)

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        # Closes the kept connection; whoever else uses the engine gets a new one on demand.
        self._engine.dispose()


@retrying_reads
class ResilientPostgresEventLogStorage(KeptEventLogSchema, _SharedPool, PostgresEventLogStorage):
    """PostgresEventLogStorage whose event writes and reads outlast a short outage, on the
    process's shared pool, asking the schema once; a run event is stored after the run's status."""

    @property
    def handles_run_events_in_store_event(self) -> bool:
        return self.has_instance  # see store_event

    def store_event(self, event: EventLogEntry) -> None:
        if self.has_instance and is_run_event(event):
            write_run_status(self._instance, event)  # retried as the run storage's own writes
        insert = self.prepare_insert_event(event).returning(SqlEventLogStorageTable.c.id)

        def insert_event() -> int:
            # One autocommitted statement: after a lost connection it either committed before
            # the loss (a rare duplicate row on retry) or not at all; never half an event.
            with self._connect() as conn:
                row = conn.execute(insert).fetchone()
            if row is None:
                raise DagsterInvariantViolationError("Cannot store an event without an id.")
            return int(row[0])

        event_id = retry_on_lost_connection(insert_event, f"writing event {event.dagster_event_type or '(log line)'}")
        # A log line has no dagster_event, hence no event type in ASSET_EVENTS.
        asset_event = event.dagster_event if event.dagster_event_type in ASSET_EVENTS else None
        if asset_event is not None and asset_event.asset_key:

            def index_asset_event() -> None:
                with self.index_transaction() as conn:  # rolled back whole when it fails
                    self._store_asset_event_tags(conn, [event], [event_id])
                    self._store_asset_event(conn, event, event_id)

            retry_on_lost_connection(index_asset_event, "writing an asset event's index")
        if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
            retry_on_lost_connection(
                lambda: self.store_asset_check_event(event, event_id), "writing an asset check event"
            )


@retrying_reads
class ResilientPostgresRunStorage(KeptRunSchema, _SharedPool, PostgresRunStorage):
    """PostgresRunStorage whose run-status updates and reads outlast a short outage, on the
    process's shared pool, asking the schema once."""

    def handle_run_event(self, run_id: str, event: DagsterEvent, update_timestamp: datetime | None = None) -> None:
        # An UPDATE of the run's row to the event's status: repeating it is harmless.
        retry_on_lost_connection(
            lambda: super(ResilientPostgresRunStorage, self).handle_run_event(run_id, event, update_timestamp),
            f"writing run status {event.event_type_value}",
        )

    def launch_lock(self) -> AbstractContextManager[bool]:
        """The run queue's lock (``dp_instance/launch_lock.py``): an advisory lock of this database."""
        return advisory_launch_lock(self._engine)


class SharedPoolPostgresScheduleStorage(KeptScheduleSchema, _SharedPool, PostgresScheduleStorage):
    """PostgresScheduleStorage (sensor and schedule ticks) on the process's shared pool, asking
    the schema once. Not retried: a tick that fails is the daemon's to repeat."""


class ResilientPostgresStorage(DagsterPostgresStorage):
    """``storage: postgres:`` with the resilient run and event-log storage above."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: PgTokenProvider | None = None,
    ):
        # DagsterPostgresStorage.__init__ would open the stock storages first: set up ours instead.
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = ResilientPostgresRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = ResilientPostgresEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = SharedPoolPostgresScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        # What DagsterPostgresStorage.__init__ ends with; mypy cannot bind self to the generic
        # MayHaveInstanceWeakref[T] of an explicitly named base's __init__.
        DagsterStorage.__init__(self)  # type: ignore[arg-type]

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return pg_config()

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: PostgresStorageConfig
    ) -> ResilientPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            # pg_config() has the field; Dagster's PostgresStorageConfig type leaves it out.
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),  # type: ignore[arg-type]
            token_provider=get_token_provider_from_config(config_value),
        )
