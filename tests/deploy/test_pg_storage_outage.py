"""The production storage class (dp_resources/pg_storage.py) outlasts a short PostgreSQL outage.

A writer stores a run's events (log lines and asset materialisations) and status updates in a
tight loop, as a busy run does, while a private PostgreSQL server is stopped for 3 s and started
again, and a reader reads what a step reads when it starts (its inputs' asset records, its run,
the run's events). Every write and every read returns, every event is stored once, the asset
index and the run's status are current. With dagster-postgres' stock classes the statement in
flight when the server stops fails (``server closed the connection unexpectedly``), which is how
a 3 s outage failed a run (F4): once on an event write, once on a step's first read.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa
from dagster import AssetKey, AssetMaterialization, DagsterEvent, DagsterEventType, DagsterRun
from dagster import DagsterRunStatus, RunsFilter
from dagster._core.events import StepMaterializationData
from dagster._core.events.log import EventLogEntry
from deploy_services import PrivatePostgres

from dp_resources.pg_storage import ResilientPostgresStorage

pytestmark = [pytest.mark.fault, pytest.mark.postgres]

JOB = "outage_job"
ASSET = AssetKey(["outage", "node"])


def _entry(run_id: str, number: int) -> EventLogEntry:
    dagster_event = None
    if number % 2:  # every other event materialises the asset (the indexed path)
        dagster_event = DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=JOB,
            event_specific_data=StepMaterializationData(
                AssetMaterialization(ASSET, metadata={"number": number})
            ),
        )
    return EventLogEntry(
        error_info=None,
        level="DEBUG",
        user_message=f"event {number}",
        run_id=run_id,
        timestamp=time.time(),
        job_name=JOB,
        dagster_event=dagster_event,
    )


class Writer(threading.Thread):
    """Stores events and run-status updates until told to stop; keeps the first error."""

    def __init__(self, storage: ResilientPostgresStorage, run_id: str) -> None:
        super().__init__(daemon=True)
        self.storage, self.run_id = storage, run_id
        self.written = 0
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        start = DagsterEvent(DagsterEventType.RUN_START.value, job_name=JOB)
        try:
            while not self.halt.is_set():
                self.storage.event_log_storage.store_event(_entry(self.run_id, self.written))
                self.written += 1
                self.storage.run_storage.handle_run_event(self.run_id, start)
        except BaseException as exc:
            self.error = exc

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.written < count and self.error is None:
            assert time.monotonic() < deadline, f"only {self.written} events written"
            time.sleep(0.05)


class Reader(threading.Thread):
    """Reads what a step reads at its start (its inputs' asset records, its run, the run's
    events) until told to stop; keeps the first error."""

    def __init__(self, storage: ResilientPostgresStorage, run_id: str) -> None:
        super().__init__(daemon=True)
        self.storage, self.run_id = storage, run_id
        self.reads = 0
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.storage.event_log_storage.get_asset_records([ASSET])
                assert self.storage.run_storage.get_runs(RunsFilter(run_ids=[self.run_id]))
                self.storage.event_log_storage.get_records_for_run(self.run_id, limit=5)
                self.reads += 1
        except BaseException as exc:
            self.error = exc


def test_a_3s_outage_loses_no_write_and_fails_none(private_pg: PrivatePostgres) -> None:
    storage = ResilientPostgresStorage(private_pg.url)
    run_id = str(uuid.uuid4())
    storage.run_storage.add_run(DagsterRun(job_name=JOB, run_id=run_id))
    writer, reader = Writer(storage, run_id), Reader(storage, run_id)
    writer.start()
    reader.start()
    writer.wait_for(50)

    private_pg.stop()  # fast shutdown: the backend of the write in flight is terminated
    time.sleep(3)
    private_pg.start()
    after_outage, reads_after_outage = writer.written, reader.reads
    writer.wait_for(after_outage + 50)
    writer.halt.set()
    writer.join(60)
    while reader.reads < reads_after_outage + 20 and reader.error is None and reader.is_alive():
        time.sleep(0.05)
    reader.halt.set()
    reader.join(60)

    assert writer.error is None, f"a write failed: {writer.error!r}"
    assert reader.error is None, f"a read failed: {reader.error!r}"
    engine = sa.create_engine(private_pg.url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT event::json->>'user_message') "
                    "FROM event_logs WHERE run_id = :run_id"),
            {"run_id": run_id},
        ).one()
    engine.dispose()
    assert tuple(stored) == (writer.written, writer.written)  # each event once

    latest = storage.event_log_storage.get_latest_materialization_events([ASSET])[ASSET]
    assert latest is not None
    last_materialised = writer.written - 1 if (writer.written - 1) % 2 else writer.written - 2
    assert latest.user_message == f"event {last_materialised}"
    (run,) = storage.run_storage.get_runs(RunsFilter(run_ids=[run_id]))
    assert run.status == DagsterRunStatus.STARTED
    storage.event_log_storage.dispose()
    storage.run_storage.dispose()


def test_a_read_whose_connection_the_server_drops_is_retried(private_pg: PrivatePostgres) -> None:
    """Deterministic where the outage above is a matter of timing: the server terminates the
    reader's connections (``pg_terminate_backend``) every 0.3 s while it reads."""
    storage = ResilientPostgresStorage(private_pg.url)
    run_id = str(uuid.uuid4())
    storage.run_storage.add_run(DagsterRun(job_name=JOB, run_id=run_id))
    for number in range(4):
        storage.event_log_storage.store_event(_entry(run_id, number))
    reader = Reader(storage, run_id)
    reader.start()
    admin = sa.create_engine(private_pg.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    terminated, deadline = 0, time.monotonic() + 6
    with admin.connect() as conn:
        while time.monotonic() < deadline and reader.error is None:
            terminated += conn.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )).scalar_one()
            time.sleep(0.3)
    admin.dispose()
    reader.halt.set()
    reader.join(60)

    assert reader.error is None, f"a read failed: {reader.error!r}"
    assert terminated >= 2  # connections the reader held when the server dropped them
    assert reader.reads > 0
    storage.event_log_storage.dispose()
    storage.run_storage.dispose()
