"""dp-poc's event-driven ETL (``flows/dppoc/event_etl.yaml``), end to end in process.

The code location is built from the example spec as shipped (only the two API URLs point at
loopback stubs, as a deployment would set them). Triggers are evaluated tick by tick with
Dagster's own contexts: the nightly cron schedule, and the event sensor over a real event bus
with wildcard topics (``data.*.ingested``, ``pipeline.**``). The runs they request execute on a
real local instance against PostgreSQL, a rates API that fails twice before answering (node
retries with backoff) and a monitoring API that is down (``on_error: continue``, dp-poc's
``fail_safe``). The history is streamed (dp-poc's ``stream_output``: each 500-row chunk stored
as its own part) and the totals written in chunks, and every run's outputs, parts included, are
listed and read back with ``dp runs``.
"""

from __future__ import annotations

import datetime as dt
import math

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from examples_support import StubService, copy_example, log_messages, materializations

from dp_assets.cli import main as dp
from dp_assets.default_resources import default_resources
from dp_assets.location import build_code_location
from dp_resources.http import HttpResource
from dp_sensors.events import EventBusResource

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

FLOW = "dppoc_event_etl"
RATES = {"EUR": 1.0, "USD": 0.9, "KRW": 0.0007}
HISTORY_ROWS = 1_200  # streamed in chunks of 500
CHUNK = 500


def history_frame() -> pd.DataFrame:
    sensors, currencies = ["s1", "s2", "s3", "s4"], list(RATES)
    return pd.DataFrame(
        {
            "sensor": [sensors[i % 4] for i in range(HISTORY_ROWS)],
            "currency": [currencies[i % 3] for i in range(HISTORY_ROWS)],
            "value": [float(i % 17) + 0.5 for i in range(HISTORY_ROWS)],
            "read_at": [f"2024-05-01T{(i // 60) % 24:02d}:{i % 60:02d}:00" for i in range(HISTORY_ROWS)],
        }
    )


def expected_totals(readings: pd.DataFrame, source: str) -> pd.DataFrame:
    """The same ETL in plain pandas."""
    rates = pd.DataFrame({"currency": list(RATES), "rate": list(RATES.values())})
    priced = readings.astype({"value": "float64"}).merge(rates, how="inner", on="currency", validate="many_to_one")
    priced["value_eur"] = (priced["value"] * priced["rate"]).round(4)
    totals = (
        priced.groupby("sensor")
        .agg(readings=("value", "count"), total_eur=("value_eur", "sum"), last_read=("read_at", "max"))
        .reset_index()
    )
    return totals.assign(source=source)


@pytest.fixture
def rates_api():
    calls = {"n": 0}

    def route(request):
        calls["n"] += 1
        if calls["n"] <= 2:  # the first two calls fail: retried by the node's policy
            return 503, {"error": "warming up"}
        return 200, {"rates": [{"currency": c, "rate": r} for c, r in RATES.items()]}

    service = StubService(route)
    yield service
    service.close()


@pytest.fixture
def monitoring_api():
    service = StubService(lambda request: (500, {"error": "monitoring is down"}))
    yield service
    service.close()


@pytest.fixture
def poc_db(postgres_url, monkeypatch):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS sensor_readings, sensor_totals"))
    history_frame().to_sql("sensor_readings", engine, index=False)
    monkeypatch.setenv("DP_DB_POC_URL", postgres_url)
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS sensor_readings, sensor_totals"))
    engine.dispose()


@pytest.fixture
def location(tmp_path, dp_home, rates_api, monitoring_api, poc_db):
    """The code location over a copy of flows/dppoc, its URL params pointed at the stubs."""
    flows = copy_example(tmp_path / "flows", "dppoc")
    spec = flows / "dppoc" / "event_etl.yaml"
    text = spec.read_text()
    text = text.replace("https://rates.example.com/v1/latest", f"{rates_api.url}/v1/latest")
    text = text.replace("https://metrics.example.com/v1/ingest", f"{monitoring_api.url}/v1/ingest")
    spec.write_text(text)
    bus = EventBusResource(url=f"sqlite:///{tmp_path / 'events.db'}")
    resources = {
        **default_resources(),
        "event_bus": bus,
        "http": HttpResource(allow_private=True, timeout_seconds=10),
    }  # loopback stubs
    defs = build_code_location(flows_folder=flows, resources=resources)
    (dp_home / "dagster" / "dagster.yaml").write_text("telemetry: {enabled: false}\n")
    with dg.DagsterInstance.get() as instance:
        yield defs, instance, bus


def test_dppoc_cron_and_wildcard_events_retries_fail_safe_and_per_run_outputs(
    location, rates_api, monitoring_api, poc_db, tmp_path
):
    """E-dppoc: cron + event triggers, node retries, on_error continue, chunked IO, ``dp runs``."""
    defs, instance, bus = location
    job = defs.resolve_job_def(FLOW)

    # -- the cron trigger: dp-poc's CronTrigger("0 3 * * *"), off until the deployment turns it on
    schedule = defs.resolve_schedule_def(f"{FLOW}_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 3 * * *", "Asia/Seoul")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    tick_time = dt.datetime(2024, 5, 2, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time) as context:
        nightly = schedule.evaluate_tick(context).run_requests
    assert len(nightly) == 1 and nightly[0].run_config == {"source": "nightly"}

    scheduled = job.execute_in_process(run_config=nightly[0].run_config, tags=nightly[0].tags, instance=instance)
    assert scheduled.success
    # retries: two 503s, then the answer, all inside one node with backoff in between
    assert len(rates_api.seen("/v1/latest")) == 3
    logs = log_messages(instance, scheduled.run_id)
    assert any("node 'rates' attempt 1 failed" in m for m in logs)
    assert any("node 'rates' attempt 2 failed" in m for m in logs)
    # fail-safe: the monitoring API refused, the node was skipped, the run still succeeded
    assert len(monitoring_api.seen("/v1/ingest", "POST")) == 1
    assert any("node 'publish_metrics' failed and on_error=continue" in m for m in logs)
    stored = materializations(instance, scheduled.run_id)
    assert "publish_metrics" not in stored and "store" in stored
    # streamed: history stored as one part per 500-row chunk, totals inserted in batches
    assert stored["history"]["parts"] == math.ceil(HISTORY_ROWS / CHUNK) == 3
    assert stored["history"]["dagster/row_count"] == HISTORY_ROWS
    nightly_expected = expected_totals(history_frame(), "nightly")
    pd.testing.assert_frame_equal(
        scheduled.output_for_node(f"{FLOW}__step", "labelled"), nightly_expected, check_dtype=False
    )
    in_db = pd.read_sql_table("sensor_totals", poc_db)
    pd.testing.assert_frame_equal(in_db, nightly_expected, check_dtype=False)

    # -- the event trigger: wildcards select two of four events; one run per event
    readings = [
        {"sensor": "s9", "currency": "USD", "value": 10.0, "read_at": "2024-05-02T10:00:00"},
        {"sensor": "s1", "currency": "EUR", "value": 4.0, "read_at": "2024-05-02T10:05:00"},
    ]
    with bus.open_bus() as events:
        events.ensure_schema()
        ingested = events.publish("data.sensors.ingested", {"readings": readings})
        events.publish("data.eu.sensors.ingested", {"readings": readings})  # two segments: not data.*.ingested
        replay = events.publish("pipeline.replay.requested", {"source": "replay"})
        events.publish("orders.created", {"order_id": 1})
    sensor = defs.resolve_sensor_def(f"{FLOW}_event_sensor")
    with dg.build_sensor_context(instance=instance, cursor=None, resources={"event_bus": bus}) as context:
        first = sensor.evaluate_tick(context)
    assert [r.run_key for r in first.run_requests] == [ingested.id, replay.id]
    assert first.run_requests[1].run_config["source"] == "replay"
    with dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"event_bus": bus}) as context:
        assert sensor.evaluate_tick(context).run_requests == []  # one event, one run: the cursor moved on

    request = first.run_requests[0]
    evented = job.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance)
    assert evented.success
    event_expected = expected_totals(pd.concat([history_frame(), pd.DataFrame(readings)], ignore_index=True), "event")
    pd.testing.assert_frame_equal(
        evented.output_for_node(f"{FLOW}__step", "labelled"), event_expected, check_dtype=False
    )

    # -- every run's outputs are kept under its own run id, listed and read back
    cli = CliRunner()
    listed = cli.invoke(dp, ["runs", "list", FLOW])
    assert listed.exit_code == 0, listed.output
    assert scheduled.run_id in listed.output and evented.run_id in listed.output
    shown = cli.invoke(dp, ["runs", "show", scheduled.run_id])
    assert shown.exit_code == 0, shown.output
    assert "labelled" in shown.output and "parquet" in shown.output  # storage: {format: parquet}
    parts = [line.split() for line in shown.output.splitlines() if line.strip().startswith("part ")]
    assert [(p[1], int(p[-2])) for p in parts] == [("0", 500), ("1", 500), ("2", 200)]  # history's parts
    whole, last = tmp_path / "history.parquet", tmp_path / "history-part-2.parquet"
    for out, extra in [(whole, []), (last, ["--part", "2"])]:
        read = cli.invoke(dp, ["runs", "read", scheduled.run_id, "history", *extra, "--out", str(out)])
        assert read.exit_code == 0, read.output
    by_id = ["sensor", "read_at", "currency", "value"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(whole).sort_values(by_id, ignore_index=True),
        history_frame().sort_values(by_id, ignore_index=True),
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(pd.read_parquet(last), pd.read_parquet(whole).iloc[2 * CHUNK :])
    for run, expected in [(scheduled, nightly_expected), (evented, event_expected)]:
        out = tmp_path / f"{run.run_id}.parquet"
        read = cli.invoke(dp, ["runs", "read", run.run_id, "labelled", "--out", str(out)])
        assert read.exit_code == 0, read.output
        pd.testing.assert_frame_equal(pd.read_parquet(out), expected, check_dtype=False)
