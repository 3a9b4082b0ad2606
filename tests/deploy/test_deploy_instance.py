"""The production ``dagster.yaml`` loads into a real DagsterInstance on the real PostgreSQL.

Each setting is read back from the instance (not from the YAML), and a run is written and read
through it, then found with plain SQL in the database the environment named.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.ref import InstanceRef
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.scheduler.instigation import TickStatus
from dagster._serdes import serialize_value

from dp_deploy.checks import check_instance_config, load_yaml
from tests.support.processes import REPO_ROOT

pytestmark = pytest.mark.postgres

DAGSTER_YAML = REPO_ROOT / "dagster.yaml"


@pytest.fixture(scope="module")
def pg_env(postgres_url: str) -> dict[str, str]:
    url = sa.make_url(postgres_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        # Trust auth ignores it; a planted value shows where the password would travel.
        "DAGSTER_PG_PASSWORD": f"planted-{secrets.token_hex(8)}",
        "DAGSTER_PG_DB": url.database or "",
    }


@pytest.fixture
def instance(pg_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    for key, value in pg_env.items():
        monkeypatch.setenv(key, value)
    ref = InstanceRef.from_dir(str(tmp_path), config_dir=str(REPO_ROOT))
    with dg.DagsterInstance.from_ref(ref) as instance:
        yield instance


def test_storage_is_postgres_with_psycopg2(instance: dg.DagsterInstance) -> None:
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    from dp_instance.pg_storage import (
        ResilientPostgresEventLogStorage,
        ResilientPostgresRunStorage,
    )

    assert isinstance(instance.run_storage, ResilientPostgresRunStorage)
    assert isinstance(instance.event_log_storage, ResilientPostgresEventLogStorage)
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    url = sa.make_url(instance.run_storage.postgres_url)
    assert url.drivername == "postgresql+psycopg2"
    assert url.query["application_name"] == "dagster"


def test_a_run_lands_in_the_named_database(instance: dg.DagsterInstance, postgres_url: str) -> None:
    """Runs and events written through the instance are rows in the environment's database."""

    @dg.asset
    def deploy_probe() -> int:
        return 1

    result = dg.materialize([deploy_probe], instance=instance)
    assert result.success
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            run_ids = set(conn.execute(sa.text("SELECT run_id FROM runs")).scalars())
            events = conn.execute(
                sa.text("SELECT count(*) FROM event_logs WHERE run_id = :r"), {"r": result.run_id}
            ).scalar_one()
    finally:
        engine.dispose()
    assert result.run_id in run_ids
    assert events > 0


def test_queued_coordinator_with_global_and_per_flow_limits(
    instance: dg.DagsterInstance,
) -> None:
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    assert queue.max_concurrent_runs == 10
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits["dp/flow"]["value"] == {"applyLimitPerUniqueValue": True}
    assert limits["dp/flow"]["limit"] == 3
    assert limits["dp/flow_limit_1"]["limit"] == 1


def test_run_monitoring_and_retries(instance: dg.DagsterInstance) -> None:
    """F2's backstop: monitoring with a max runtime, no resume (default launcher), run retries."""
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_runtime_seconds == 21600
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert not instance.run_launcher.supports_resume_run
    assert instance.run_retries_enabled
    assert instance.run_retries_max_retries == 1
    assert instance.run_retries_retry_on_asset_or_op_failure is False


def test_tick_retention_and_telemetry(instance: dg.DagsterInstance) -> None:
    sensor = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    schedule = instance.get_tick_retention_settings(InstigatorType.SCHEDULE)
    assert sensor[TickStatus.SKIPPED] == 7
    assert sensor[TickStatus.SUCCESS] == 30
    assert set(schedule.values()) == {90}
    assert instance.telemetry_enabled is False


def test_password_stays_an_env_reference_S6(instance: dg.DagsterInstance, pg_env: dict[str, str]) -> None:
    """S6: the instance ref (sent to every Celery task and run worker) carries the variable's
    name, never the password."""
    serialized = serialize_value(instance.get_ref())
    assert pg_env["DAGSTER_PG_PASSWORD"] not in serialized
    assert "DAGSTER_PG_PASSWORD" in serialized


def test_production_yaml_passes_the_deployment_check() -> None:
    assert check_instance_config(load_yaml(DAGSTER_YAML)) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(
            ("storage", "custom", "config", "postgres_db", "scheme"),
            "postgresql",
            "psycopg 3",
            id="scheme",
        ),
        pytest.param(("storage", "custom", "class"), "DagsterPostgresStorage", "Resilient", id="class"),
        pytest.param(("run_monitoring", "enabled"), False, "run_monitoring.enabled", id="monitor"),
        pytest.param(("run_monitoring", "max_resume_run_attempts"), 3, "must be 0", id="resume"),
        pytest.param(("telemetry", "enabled"), True, "telemetry", id="telemetry"),
        pytest.param(("run_retries", "enabled"), False, "run_retries", id="retries"),
    ],
)
def test_deployment_check_names_what_is_wrong(path: tuple, value: object, expected: str) -> None:
    config = load_yaml(DAGSTER_YAML)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    errors = check_instance_config(config)
    assert any(expected in error for error in errors), errors
