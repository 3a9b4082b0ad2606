"""The production storage class (dp_instance/pg_storage.py) outlasts a short PostgreSQL outage.

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
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterEvent,
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.events import StepMaterializationData
from dagster._core.events.log import EventLogEntry
from deploy_services import PrivatePostgres

from dp_instance.pg_storage import ResilientPostgresStorage

pytestmark = [pytest.mark.fault, pytest.mark.postgres]

JOB = "outage_job"
ASSET = AssetKey(["outage", "node"])


def _entry(run_id: str, number: int) -> EventLogEntry:
    dagster_event = None
    if number % 2:  # every other event materialises the asset (the indexed path)
        dagster_event = DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            job_name=JOB,
            event_specific_data=StepMaterializationData(AssetMaterialization(ASSET, metadata={"number": number})),
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


class Loop(threading.Thread):
    """Repeats ``once`` until told to stop, counting what is ``done``; keeps the first error."""

    def __init__(self, storage: ResilientPostgresStorage, run_id: str) -> None:
        super().__init__(daemon=True)
        self.storage, self.run_id = storage, run_id
        self.done = 0
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def once(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                self.once()
                self.done += 1
        except BaseException as exc:  # noqa: BLE001 - kept for the test to report: any error fails it
            self.error = exc

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.done < count and self.error is None:
            assert time.monotonic() < deadline, f"{type(self).__name__}: only {self.done} done"
            time.sleep(0.05)

    def stop(self) -> None:
        self.halt.set()
        self.join(60)


class Writer(Loop):
    """Stores an event (log line or asset materialisation) and a run-status update per round."""

    def once(self) -> None:
        self.storage.event_log_storage.store_event(_entry(self.run_id, self.done))
        start = DagsterEvent(DagsterEventType.RUN_START.value, job_name=JOB)
        self.storage.run_storage.handle_run_event(self.run_id, start)


class Reader(Loop):
    """Reads what a step reads at its start: its inputs' asset records, its run, its events."""

    def once(self) -> None:
        self.storage.event_log_storage.get_asset_records([ASSET])
        assert self.storage.run_storage.get_runs(RunsFilter(run_ids=[self.run_id]))
        self.storage.event_log_storage.get_records_for_run(self.run_id, limit=5)


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
    writer.wait_for(writer.done + 50)
    reader.wait_for(reader.done + 20)
    writer.stop()
    reader.stop()

    assert writer.error is None, f"a write failed: {writer.error!r}"
    assert reader.error is None, f"a read failed: {reader.error!r}"
    engine = sa.create_engine(private_pg.url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT count(*), count(DISTINCT event::json->>'user_message') FROM event_logs WHERE run_id = :run_id"
            ),
            {"run_id": run_id},
        ).one()
    engine.dispose()
    assert tuple(stored) == (writer.done, writer.done)  # each event once

    latest = storage.event_log_storage.get_latest_materialization_events([ASSET])[ASSET]
    assert latest is not None
    last_materialised = writer.done - 1 if (writer.done - 1) % 2 else writer.done - 2
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
            terminated += conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).scalar_one()
            time.sleep(0.3)
    admin.dispose()
    reader.stop()

    assert reader.error is None, f"a read failed: {reader.error!r}"
    assert terminated >= 2  # connections the reader held when the server dropped them
    assert reader.done > 0
    storage.event_log_storage.dispose()
    storage.run_storage.dispose()
