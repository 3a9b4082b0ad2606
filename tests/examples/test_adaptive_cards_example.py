"""The Adaptive Card pipeline (``flows/adaptive_cards/card_pipeline.yaml``), end to end.

Real PostgreSQL (the example's own ``data/setup.sql``), a T2A-style stub API on loopback that
checks the bearer token, answers one organisation only after a 503 (retried with backoff) and
keeps failing for another, and the 2-hourly schedule evaluated tick by tick. The run fans out
per sales organisation and per user; the failed organisation and its user are recorded on the
run, everything else is upserted; a retry run (the tag ``dp/retry_items`` that ``dp
retry-failed`` sets) then takes only what failed.

Executor: in process here; ``tests/deploy/test_deploy_adaptive_cards.py`` runs the same flow
against the same stub on the production stack, its steps on Celery workers.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from examples_support import copy_example, materializations
from t2a_stub import (
    ANSWERING,
    FLOW,
    SNAPSHOTS,
    T2A,
    TABLES,
    TOKEN,
    create_tables,
    expected_cards,
    expected_gscm,
    expected_material,
)

from dp_assets.cli import main as dp
from dp_assets.default_resources import default_resources
from dp_assets.location import build_code_location
from dp_resources.http import HttpResource
from dp_resources.secrets_resource import SecretsResource

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]


@pytest.fixture
def t2a():
    stub = T2A()
    yield stub
    stub.service.close()


@pytest.fixture
def cards_db(postgres_url, monkeypatch):
    engine = sa.create_engine(postgres_url)
    create_tables(engine)
    monkeypatch.setenv("DP_DB_CARDS_URL", postgres_url)
    monkeypatch.setenv("DP_SECRET_T2A_TOKEN", TOKEN)
    yield engine
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
    engine.dispose()


@pytest.fixture
def location(tmp_path, dp_home, t2a, cards_db):
    flows = copy_example(tmp_path / "flows", "adaptive_cards")
    spec = flows / "adaptive_cards" / "card_pipeline.yaml"
    spec.write_text(spec.read_text().replace("https://api.t2a.example.com", t2a.service.url))  # deployment setting
    resources = {
        **default_resources(),
        "http": HttpResource(allow_private=True, timeout_seconds=10),
        "secrets": SecretsResource(),
    }
    (dp_home / "dagster" / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    return build_code_location(flows_folder=flows, resources=resources)


def first_run(location: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The run a 2-hourly tick requests (14:00 KST), executed."""
    schedule = location.resolve_schedule_def(f"{FLOW}_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 */2 * * *", "Asia/Seoul")
    tick = dt.datetime(2024, 6, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=location.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert len(requests) == 1
    assert requests[0].partition_key == "2024-06-01-12:00"  # the 2-hour window the tick closes
    result = location.resolve_job_def(FLOW).execute_in_process(
        run_config=requests[0].run_config,
        tags=requests[0].tags,
        instance=instance,
        partition_key=requests[0].partition_key,
    )
    assert result.success  # failed items do not fail the run
    return result


def retry_run(location: dg.Definitions, instance: dg.DagsterInstance, first: dg.ExecuteInProcessResult):
    """The run `dp retry-failed RUN` launches: RUN's params, tag dp/retry_items=RUN."""
    tags = {"dp/retry_items": first.run_id, "dp/parent_run_id": first.run_id, "dp/trigger": "retry"}
    return location.resolve_job_def(FLOW).execute_in_process(
        run_config=first.dagster_run.run_config,
        tags=tags,
        instance=instance,
        partition_key=first.dagster_run.tags["dagster/partition"],  # the same window
    )


def test_adaptive_cards_fan_out_retries_dead_letters_upsert_and_schedule(location, t2a, cards_db):
    """Every 2 hours; fan-out per org and per user; retries with backoff; failures recorded and re-run."""
    with dg.DagsterInstance.get() as instance:
        first = first_run(location, instance)
        stored = materializations(instance, first.run_id)

        # stage 1: one call per active org (BR50 is inactive), KR10 retried after its 503,
        # JP20 tried 1 + 3 times and recorded as failed
        assert t2a.calls == {"DE30": 1, "JP20": 4, "KR10": 2, "US40": 1}
        assert stored["t2a"]["items"] == 4 and stored["t2a"]["items_failed"] == 1
        assert [i["sales_org"] for i in stored["t2a"]["failed_items"]] == ["JP20"]
        material = pd.read_sql("SELECT * FROM material ORDER BY sales_org, material", cards_db)
        pd.testing.assert_frame_equal(material, expected_material(ANSWERING), check_dtype=False)
        gscm = pd.read_sql("SELECT * FROM gscm ORDER BY sales_org, material", cards_db)
        pd.testing.assert_frame_equal(gscm, expected_gscm(ANSWERING), check_dtype=False)

        # stage 2: one card per user; the JP20 user fails alone, the others are upserted
        assert stored["cards"]["items"] == 6 and [i["user_id"] for i in stored["cards"]["failed_items"]] == ["u003"]
        users = pd.read_sql("SELECT * FROM card_users", cards_db)
        saved = pd.read_sql("SELECT * FROM adaptive_cards ORDER BY user_id", cards_db)
        pd.testing.assert_frame_equal(
            saved.drop(columns="card_json"), expected_cards(users, ANSWERING), check_dtype=False
        )
        card = json.loads(saved.set_index("user_id").loc["u001", "card_json"])
        assert card["type"] == "AdaptiveCard" and card["lang"] == "ko"
        assert card["body"][0]["text"] == "Kim Minji: 1 shortage(s) in KR10"
        assert [f["title"] for f in card["body"][1]["facts"]] == ["M-100", "M-300"]

        # the dead letters, as `dp retry-failed` lists them
        listed = CliRunner().invoke(dp, ["retry-failed", first.run_id, "--dry-run"])
        assert listed.exit_code == 0, listed.output
        lines = [json.loads(line) for line in listed.output.splitlines()]
        assert sorted(e.get("sales_org") or e.get("user_id") for e in lines) == ["JP20", "u003"]

        # T2A recovers; the retry run completes the organisation and the user that failed, and
        # the upserts leave one row per key
        t2a.down.clear()
        assert retry_run(location, instance, first).success
        material = pd.read_sql("SELECT * FROM material ORDER BY sales_org, material", cards_db)
        pd.testing.assert_frame_equal(material, expected_material(list(SNAPSHOTS)), check_dtype=False)
        saved = pd.read_sql("SELECT * FROM adaptive_cards ORDER BY user_id", cards_db)
        pd.testing.assert_frame_equal(
            saved.drop(columns="card_json"), expected_cards(users, list(SNAPSHOTS)), check_dtype=False
        )


def test_adaptive_cards_retry_run_takes_only_the_failed_items(location, t2a, cards_db):
    """`dp retry-failed RUN`: only the failed organisation and user run again."""
    with dg.DagsterInstance.get() as instance:
        first = first_run(location, instance)
        t2a.down.clear()
        before = dict(t2a.calls)
        retry = retry_run(location, instance, first)
        assert retry.success
        called = {org: n - before.get(org, 0) for org, n in t2a.calls.items() if n != before.get(org, 0)}
        assert called == {"JP20": 1}
        retried = materializations(instance, retry.run_id)
        assert retried["t2a"]["items"] == 1 and retried["cards"]["items"] == 1
