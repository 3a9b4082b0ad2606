"""The production storage (dp_instance/pg_storage.py) keeps its PostgreSQL connection between
operations and asks the schema once (dp_instance/sql_storage.py).

dagster-postgres opens a connection for every storage operation and, for every asset event,
run-status change and sensor tick, reads the schema to learn whether a migration has run: a run
of 50 nodes opened 624 connections and made 153 reflections (docs/benchmarks.md). What a user relies on
still holds here: runs and their events are stored; a process keeps one connection however many
instances it opens (a Celery pool process opens one per step); a forked child never uses its
parent's connection; a server restart does not fail the next operation.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import sqlalchemy as sa
from dagster._core.scheduler.instigation import TickStatus
from deploy_services import PrivatePostgres
from storage_probes import counted, sensor_tick

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_instance import pg_storage
from dp_io import RunScopedIOManager

pytestmark = [pytest.mark.postgres]

SPEC = {
    "id": "pooled",
    "nodes": [
        {"id": "numbers", "type": "StaticData", "params": {"rows": [{"x": 1}, {"x": 2}, {"x": 3}]}},
        {
            "id": "doubled",
            "type": "AddModifyColumn",
            "inputs": ["numbers"],
            "params": {"column": "y", "expression": "x * 2"},
        },
        {"id": "kept", "type": "FilterRows", "inputs": ["doubled"], "params": {"condition": "y > 2"}},
    ],
}
KEYS = [dg.AssetKey(["pooled", node["id"]]) for node in SPEC["nodes"]]


@pytest.fixture
def instance_home(private_pg: PrivatePostgres, tmp_path: Path) -> Path:
    url = f"{private_pg.url}?application_name=dagster"  # counted by connections_by_application
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: dp_instance.pg_storage\n"
        f"    class: ResilientPostgresStorage\n    config:\n      postgres_url: {url}\n"
    )
    return tmp_path


def _job(outputs: Path) -> dg.JobDefinition:
    catalog = default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(SPEC, catalog), catalog),
        dg.Definitions(resources={"io_manager": RunScopedIOManager(base_url=str(outputs))}),
    )
    return defs.resolve_job_def("pooled")


def test_a_run_opens_no_connection_and_reads_no_schema_after_the_first(instance_home, tmp_path, monkeypatch):
    job = _job(tmp_path / "outputs")
    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        assert job.execute_in_process(instance=instance).success
        with counted(monkeypatch, psycopg2) as (opened, schema_reads):
            second = job.execute_in_process(instance=instance)
        assert second.success
        assert (len(opened), schema_reads) == (0, [])
        run = instance.get_run_by_id(second.run_id)
        assert run is not None and run.is_success
        for key in KEYS:  # every event of the run is stored, lineage included
            record = instance.fetch_materializations(key, limit=1).records[0]
            assert record.run_id == second.run_id
            assert "dagster/data_version" in record.asset_materialization.tags


def test_a_sensor_tick_opens_no_connection_and_reads_no_schema(instance_home, monkeypatch):
    """The daemon's ticks: dagster-postgres' schedule storage connects for every operation and
    lists the tables to learn whether a migration ran (10 connections and 5 reads per tick)."""
    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        sensor_tick(instance.schedule_storage)
        with counted(monkeypatch, psycopg2) as (opened, schema_reads):
            ticks = sensor_tick(instance.schedule_storage)
        assert (len(opened), schema_reads) == (0, [])
        assert [t.status for t in ticks] == [TickStatus.SKIPPED, TickStatus.SKIPPED]


def test_instances_of_one_process_share_one_connection(instance_home, private_pg, tmp_path):
    """A Celery pool process opens an instance per step: they must not each keep a connection."""
    job = _job(tmp_path / "outputs")
    instances = [dg.DagsterInstance.from_config(str(instance_home)) for _ in range(4)]
    try:
        for instance in instances:
            assert job.execute_in_process(instance=instance).success
        assert private_pg.connections_by_application().get("dagster", 0) == 1
    finally:
        for instance in instances:
            instance.dispose()
    assert private_pg.connections_by_application().get("dagster", 0) == 0


def test_a_forked_child_uses_a_connection_of_its_own(instance_home, tmp_path):
    job = _job(tmp_path / "outputs")
    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        run_id = job.execute_in_process(instance=instance).run_id
        engine = instance.run_storage._engine
        with engine.connect() as conn:
            parent_backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        pid = os.fork()
        if pid == 0:  # the child writes and reads through the storage objects it inherited
            code = 1
            try:
                with engine.connect() as conn:
                    child_backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                instance.report_engine_event("from the forked child", dagster_run=instance.get_run_by_id(run_id))
                code = 0 if child_backend != parent_backend else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with engine.connect() as conn:  # the parent's kept connection was left alone
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() == parent_backend
        assert [e.message for e in instance.all_logs(run_id)].count("from the forked child") == 1
        assert job.execute_in_process(instance=instance).success


def test_after_a_server_restart_the_next_operations_succeed_at_once(instance_home, private_pg, tmp_path, caplog):
    """The kept connection is dead after a restart: it is checked before use and replaced, so no
    operation fails nor even needs the storage's retry."""
    job = _job(tmp_path / "outputs")
    with dg.DagsterInstance.from_config(str(instance_home)) as instance:
        assert job.execute_in_process(instance=instance).success
        private_pg.stop()
        private_pg.start()
        with caplog.at_level(logging.WARNING, logger=pg_storage.__name__):
            result = job.execute_in_process(instance=instance)
        assert result.success
        assert not [r for r in caplog.records if "lost the connection" in r.getMessage()]
        assert instance.fetch_materializations(KEYS[-1], limit=1).records[0].run_id == result.run_id


class _Token:
    """A token provider (``auth_provider`` in dagster.yaml) for a server with trust auth."""

    def get_token(self) -> str:
        return ""


def test_with_a_token_provider_an_instance_keeps_no_engine_after_it_is_disposed(private_pg):
    """Every instance builds its own token provider: its storage gets a pooled engine of its own
    (not one more entry in the process's shared ones) and gives its connection back on dispose."""
    url = f"{private_pg.url}?application_name=dagster"
    storages = [pg_storage.ResilientPostgresStorage(url, token_provider=_Token()) for _ in range(2)]
    first, second = (s.run_storage for s in storages)
    assert first._engine is not second._engine
    assert first._engine is not pg_storage.shared_pg_engine(url)
    counts = [s.run_storage.get_runs_count() for s in storages]  # connect through the token
    assert counts[0] == counts[1]
    assert private_pg.connections_by_application().get("dagster", 0) == 2
    for storage in storages:
        storage.run_storage.dispose()
    assert private_pg.connections_by_application().get("dagster", 0) == 0
