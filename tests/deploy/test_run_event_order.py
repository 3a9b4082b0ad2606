"""A run event is stored after the run's status it reports (dp_instance/run_event_order.py), in
the production storage (PostgreSQL) and the embedded default's (SQLite).

The run-retry daemon reads RUN_FAILURE events past its cursor and asks each event's run whether
it will be retried. Dagster's own order (event, then status, then the ``dagster/will_retry``
tag) lets it read a failure whose run is still STARTED with no tag: it does not retry that run,
and its cursor moves past the event for good. After a database outage, when each write waits
before it is retried, that happened (F4 25 s, docs/deploy.md). Here every job event is caught at
the moment its row is inserted, and the run is read as the daemon would read it then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import WILL_RETRY_TAG

from dp_assets.cli.home import local_storage
from dp_instance.embedded_storage import EmbeddedEventLogStorage
from dp_instance.pg_storage import ResilientPostgresEventLogStorage

RETRIES = "run_retries:\n  enabled: true\n  max_retries: 1\n"


@dg.asset
def fails() -> None:
    raise RuntimeError("the asset's own failure")


@dg.asset
def passes() -> int:
    return 1


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "embedded"])
def instance(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    if request.param == "postgres":
        url = request.getfixturevalue("private_pg").url
        storage = (
            "storage:\n  custom:\n    module: dp_instance.pg_storage\n"
            f"    class: ResilientPostgresStorage\n    config:\n      postgres_url: {url}\n"
        )
    else:
        storage = local_storage(tmp_path)
    (tmp_path / "dagster.yaml").write_text(storage + RETRIES)
    with dg.DagsterInstance.from_config(str(tmp_path)) as opened:
        yield opened


def _seen_at_insert(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[str, dg.DagsterRunStatus, str | None]]:
    """Per job event: its type, and the run's status and will-retry tag when its row is inserted."""
    seen: list[tuple[str, dg.DagsterRunStatus, str | None]] = []
    storage = instance.event_log_storage
    assert isinstance(storage, ResilientPostgresEventLogStorage | EmbeddedEventLogStorage)
    prepare = storage.prepare_insert_event

    def recording(event):  # type: ignore[no-untyped-def]
        if event.is_dagster_event and event.get_dagster_event().is_job_event:
            run = instance.get_run_by_id(event.run_id)
            assert run is not None
            seen.append((event.get_dagster_event().event_type_value, run.status, run.tags.get(WILL_RETRY_TAG)))
        return prepare(event)

    monkeypatch.setattr(storage, "prepare_insert_event", recording)
    return seen


def test_a_failed_run_is_failure_and_tagged_will_retry_when_its_failure_event_is_stored(instance, monkeypatch):
    seen = _seen_at_insert(instance, monkeypatch)
    result = dg.materialize([fails], instance=instance, raise_on_error=False)
    assert not result.success
    failures = [(status, tag) for kind, status, tag in seen if kind == "PIPELINE_FAILURE"]
    assert failures == [(dg.DagsterRunStatus.FAILURE, "true")]
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE and run.tags[WILL_RETRY_TAG] == "true"


def test_each_run_event_finds_the_run_in_the_status_it_reports(instance, monkeypatch):
    seen = _seen_at_insert(instance, monkeypatch)
    result = dg.materialize([passes], instance=instance)
    assert result.success
    statuses = {kind: status for kind, status, _ in seen}
    assert statuses["PIPELINE_START"] == dg.DagsterRunStatus.STARTED
    assert statuses["PIPELINE_SUCCESS"] == dg.DagsterRunStatus.SUCCESS
    assert all(tag is None for _, _, tag in seen)  # a run that did not fail is not tagged
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
