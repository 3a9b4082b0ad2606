"""The ``partitions:`` surface of a spec, and what a schedule on a partitioned flow launches.

Property: any ``partitions:`` value either validates, and then compiles into a job whose every
asset has the flow's partitions and whose schedule launches, at any tick, a key of them or
nothing; or it is refused with errors naming the flow and a field under ``partitions`` - never
another exception."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import FlowValidationError, validate_spec
from tests.fuzzing import fuzz_settings

CATALOG = default_catalog()
ROWS = {"id": "rows", "type": "StaticData", "params": {"rows": [{"at": "{{ partition.key }}"}]}}
SCHEDULE = {"type": "schedule", "cron": "15 */2 * * *", "timezone": "Asia/Seoul"}

dates = st.one_of(
    st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31)).map(str),
    st.builds(
        lambda d, h, m: f"{d} {h:02d}:{m:02d}",
        st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    st.text(max_size=12),
)
time_specs = st.fixed_dictionaries(
    {"type": st.just("time"), "start": dates},
    optional={
        "every": st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly"]),
        "cron": st.sampled_from(["0 */2 * * *", "30 6 * * 1", "not cron"]),
        "end": dates,
        "timezone": st.sampled_from(["UTC", "Asia/Seoul", "America/New_York", "Mars/Base", "../etc"]),
        "minute_offset": st.integers(-5, 70),
        "hour_offset": st.integers(-2, 30),
        "day_offset": st.integers(-1, 40),
        "backfill": st.sampled_from(["auto", "single_run", "per_partition", "sometimes"]),
    },
)
static_specs = st.fixed_dictionaries(
    {"type": st.just("static"), "keys": st.lists(st.text(min_size=0, max_size=8), max_size=5)}
)
partition_specs = st.one_of(
    time_specs, static_specs, st.just({"type": "dynamic"}), st.dictionaries(st.text(), st.text())
)


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick_context(instance, defs, tick):
    return dg.build_schedule_context(instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def())


@fuzz_settings(60)
@given(partitions=partition_specs, tick=st.datetimes(dt.datetime(2019, 1, 1), dt.datetime(2031, 1, 1)))
def test_a_partitions_spec_compiles_or_is_refused_naming_its_field(instance, partitions, tick):
    triggers = [SCHEDULE] if partitions.get("type") in ("time", "static") else []
    spec = {"id": "fuzzed", "partitions": partitions, "triggers": triggers, "nodes": [ROWS]}
    try:
        validated = validate_spec(spec, CATALOG)
    except FlowValidationError as exc:
        assert all(e.flow == "fuzzed" for e in exc.errors)
        assert any(e.field.startswith("partitions") for e in exc.errors), exc.errors
        return
    defs = build_flow_definitions(validated, CATALOG)
    job = defs.resolve_job_def("fuzzed")
    assert defs.resolve_assets_def(dg.AssetKey(["fuzzed", "rows"])).partitions_def == job.partitions_def
    if triggers:
        context = tick_context(instance, defs, tick.replace(tzinfo=dt.UTC))
        result = defs.resolve_schedule_def("fuzzed_schedule").evaluate_tick(context)
        for request in result.run_requests or []:
            assert job.partitions_def.has_partition_key(request.partition_key)


def test_a_schedule_launches_the_window_its_tick_closes(instance):
    spec = {
        "id": "cards",
        "partitions": {"type": "time", "cron": "0 */2 * * *", "start": "2026-01-01", "timezone": "Asia/Seoul"},
        "params": {"n": {"type": "integer", "default": 1}},
        "triggers": [{**SCHEDULE, "cron": "0 */2 * * *", "params": {"n": 3}}],
        "nodes": [ROWS],
    }
    defs = build_flow_definitions(validate_spec(spec, CATALOG), CATALOG)
    schedule = defs.resolve_schedule_def("cards_schedule")
    # 14:00 in Seoul closes the window 12:00-14:00
    tick = dt.datetime(2026, 3, 2, 5, 0, tzinfo=dt.UTC)
    (request,) = schedule.evaluate_tick(tick_context(instance, defs, tick)).run_requests
    assert request.partition_key == "2026-03-02-12:00"
    assert request.run_config == {"ops": {"cards__step": {"config": {"params": {"n": 3}}}}}
    before = dt.datetime(2025, 12, 31, 15, 0, tzinfo=dt.UTC)  # no window has ended yet
    result = schedule.evaluate_tick(tick_context(instance, defs, before))
    assert not result.run_requests and "no time window" in result.skip_message


def test_a_schedule_on_static_partitions_launches_every_key(instance):
    spec = {
        "id": "regions",
        "partitions": {"type": "static", "keys": ["eu", "us"]},
        "triggers": [SCHEDULE],
        "nodes": [ROWS],
    }
    defs = build_flow_definitions(validate_spec(spec, CATALOG), CATALOG)
    context = tick_context(instance, defs, dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    requests = defs.resolve_schedule_def("regions_schedule").evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == ["eu", "us"]


@pytest.mark.parametrize(
    ("partitions", "says"),
    [
        ({"type": "time", "start": "2026-01-01"}, "give one of 'every'"),
        ({"type": "time", "every": "daily", "cron": "0 * * * *", "start": "2026-01-01"}, "give one of 'every'"),
        ({"type": "time", "every": "daily", "start": "2026-01-05", "end": "2026-01-01"}, "must be after start"),
        ({"type": "time", "every": "daily", "start": "01/05/2026"}, "is not 'YYYY-MM-DD'"),
        ({"type": "static", "keys": ["a", "a"]}, "repeated: a"),
        ({"type": "static", "keys": ["a,b"]}, "pattern"),
    ],
)
def test_bad_partitions_are_refused_naming_the_field(partitions, says):
    with pytest.raises(FlowValidationError) as caught:
        validate_spec({"id": "bad", "partitions": partitions, "nodes": [ROWS]}, CATALOG)
    assert any(e.field.startswith("partitions") and says in e.message for e in caught.value.errors), caught.value.errors
