"""Event sensors at tick level, on the SQLite and the Redis bus: run requests, run keys (the
event ids), cursors, wildcards, rejected payloads, webhook events and ``when_running: skip``."""

from __future__ import annotations

import dagster as dg
import pytest
from triggers_support import compile_flows, flow_spec

from dp_sensors.events import EventBusResource

PARAMS = {
    "region": {"type": "string", "required": True},
    "n": {"type": "integer", "default": 1},
    "day": {"type": "date"},
}


def sensor_of(spec: dict, name: str) -> dg.SensorDefinition:
    return compile_flows(spec).resolve_sensor_def(name)


def tick(sensor: dg.SensorDefinition, instance, event_bus: EventBusResource, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"event_bus": event_bus})
    return sensor.evaluate_tick(context)


ORDERS = flow_spec(
    "orders",
    params=PARAMS,
    triggers=[{"type": "event", "topics": ["orders.*.created", "billing.**"], "params": {"n": 7}}],
)


def test_one_run_request_per_matching_event_keyed_by_event_id(instance, event_bus):
    sensor = sensor_of(ORDERS, "orders_event_sensor")
    with event_bus.open_bus() as bus:
        first = bus.publish("orders.eu.created", {"region": "EU", "extra": "ignored"})
        bus.publish("orders.created", {"region": "XX"})  # '*' is exactly one segment
        bus.publish("shop.orders.eu.created", {"region": "XX"})
        second = bus.publish("billing.invoices.paid", {"region": "US", "n": 99, "day": "2024-02-29"})
        last = bus.publish("unrelated", {})
    result = tick(sensor, instance, event_bus, None)
    assert [r.run_key for r in result.run_requests] == [first.id, second.id]
    assert [r.run_config for r in result.run_requests] == [
        {"region": "EU", "n": 7},
        {"region": "US", "n": 7, "day": "2024-02-29"},  # fixed params win over the payload
    ]
    assert result.run_requests[0].tags["dp/event_topic"] == "orders.eu.created"
    assert result.cursor == last.id  # the cursor passes non-matching events too

    again = tick(sensor, instance, event_bus, result.cursor)
    assert again.run_requests == [] and again.cursor == last.id
    with event_bus.open_bus() as bus:
        newer = bus.publish("orders.us.created", {"region": "US"})
    later = tick(sensor, instance, event_bus, again.cursor)
    assert [r.run_key for r in later.run_requests] == [newer.id] and later.cursor == newer.id


def test_E1_repeated_tick_from_an_old_cursor_gives_the_same_run_keys(instance, event_bus):
    """E1 at tick level: a daemon that died before storing the cursor evaluates the tick again
    from the old cursor and asks for the same run keys, which Dagster creates only once; a
    redelivery with the same dedupe key is no new event at all."""
    sensor = sensor_of(ORDERS, "orders_event_sensor")
    with event_bus.open_bus() as bus:
        event = bus.publish("orders.eu.created", {"region": "EU"}, dedupe_key="delivery-1")
        for _ in range(5):
            assert bus.publish("orders.eu.created", {"region": "EU"}, dedupe_key="delivery-1").id == event.id
    first = tick(sensor, instance, event_bus, None)
    repeat = tick(sensor, instance, event_bus, None)
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in repeat.run_requests] == [event.id]
    assert first.cursor == repeat.cursor == event.id


@pytest.mark.parametrize(
    "payload,reason",
    [
        pytest.param({"region": 5}, "region: Input should be a valid string", id="wrong-type"),
        pytest.param({"n": 3}, "region: Field required", id="missing-required"),
        pytest.param({"region": "EU", "n": "3"}, "n: Input should be a valid integer", id="string-for-int"),
        pytest.param({"region": "EU", "day": "2024-02-30"}, "day: Value error", id="bad-date"),
    ],
)
def test_bad_payload_is_a_rejected_event_not_a_run(instance, event_bus, payload, reason):
    spec = flow_spec("typed", params=PARAMS, triggers=[{"type": "event", "topics": ["in.**"]}])
    sensor = sensor_of(spec, "typed_event_sensor")
    with event_bus.open_bus() as bus:
        bad = bus.publish("in.x", payload)
        good = bus.publish("in.y", {"region": "EU"})
    result = tick(sensor, instance, event_bus, None)
    assert [r.run_key for r in result.run_requests] == [good.id]  # the tick goes on after it
    assert result.cursor == good.id
    with event_bus.open_bus() as bus:
        (rejection,) = bus.rejections(consumer="typed_event_sensor")
    assert rejection.event_id == bad.id
    assert "do not fit flow 'typed'" in rejection.reason and reason in rejection.reason


def test_webhook_event_fills_params_from_the_body(instance, event_bus):
    spec = flow_spec(
        "hooked",
        params={**PARAMS, "event": {"type": "object"}},
        triggers=[{"type": "event", "topics": ["webhook.hooked"]}],
    )
    sensor = sensor_of(spec, "hooked_event_sensor")
    body = {"region": "EU", "n": 2}
    with event_bus.open_bus() as bus:
        event = bus.publish("webhook.hooked", {"flow_id": "hooked", "params": body}, source="webhook")
    (request,) = tick(sensor, instance, event_bus, None).run_requests
    assert request.run_key == event.id
    assert request.run_config == {"region": "EU", "n": 2, "event": body}


def test_start_latest_begins_after_the_newest_event(instance, event_bus):
    spec = flow_spec("fresh", params=PARAMS, triggers=[{"type": "event", "topics": ["a.*"], "start": "latest"}])
    sensor = sensor_of(spec, "fresh_event_sensor")
    with event_bus.open_bus() as bus:
        old = bus.publish("a.b", {"region": "EU"})
    first = tick(sensor, instance, event_bus, None)
    assert first.run_requests == [] and first.cursor == old.id
    with event_bus.open_bus() as bus:
        new = bus.publish("a.b", {"region": "EU"})
    assert [r.run_key for r in tick(sensor, instance, event_bus, first.cursor).run_requests] == [new.id]


def test_start_latest_on_an_empty_bus_handles_the_first_event(instance, event_bus):
    spec = flow_spec("empty", params=PARAMS, triggers=[{"type": "event", "topics": ["a.*"], "start": "latest"}])
    sensor = sensor_of(spec, "empty_event_sensor")
    first = tick(sensor, instance, event_bus, None)
    assert first.run_requests == [] and first.cursor
    with event_bus.open_bus() as bus:
        event = bus.publish("a.b", {"region": "EU"})
    result = tick(sensor, instance, event_bus, first.cursor)
    assert [r.run_key for r in result.run_requests] == [event.id] and result.cursor == event.id


def test_when_running_skip_records_skipped_events(instance, event_bus):
    flow_id = "single_redis" if "redis" in event_bus.url else "single_sql"  # one instance per module
    spec = flow_spec(
        flow_id,
        params=PARAMS,
        policies={"when_running": "skip"},
        triggers=[{"type": "event", "topics": ["a.*"]}],
    )
    sensor = sensor_of(spec, f"{flow_id}_event_sensor")
    with event_bus.open_bus() as bus:
        first = bus.publish("a.b", {"region": "EU"})
        second = bus.publish("a.b", {"region": "US"})
    result = tick(sensor, instance, event_bus, None)
    assert [r.run_key for r in result.run_requests] == [first.id]  # one per tick at most
    instance.add_run(dg.DagsterRun(job_name=flow_id, status=dg.DagsterRunStatus.STARTED))
    with event_bus.open_bus() as bus:
        third = bus.publish("a.b", {"region": "EU"})
    busy = tick(sensor, instance, event_bus, result.cursor)
    assert busy.run_requests == [] and busy.cursor == third.id
    with event_bus.open_bus() as bus:
        skipped = {r.event_id: r.reason for r in bus.rejections(consumer=f"{flow_id}_event_sensor")}
    assert set(skipped) == {second.id, third.id}
    assert "when_running: skip" in skipped[third.id]


def test_bus_errors_fail_the_tick(instance, tmp_path):
    """A bus that cannot be read raises (the tick fails, the cursor stays), never a silent skip."""
    sensor = sensor_of(ORDERS, "orders_event_sensor")
    broken = EventBusResource(url=f"sqlite:///{tmp_path / 'missing' / 'nope' / 'x.db'}")
    import sqlalchemy.exc

    with pytest.raises(sqlalchemy.exc.OperationalError, match="unable to open database file"):
        tick(sensor, instance, broken, None)


def test_sensor_properties(monkeypatch):
    monkeypatch.setenv("DP_SENSOR_INTERVAL_SECONDS", "7")
    spec = flow_spec(
        "props",
        params=PARAMS,
        triggers=[
            {"type": "event", "topics": ["a.*"]},
            {"type": "event", "topics": ["b.*"], "enabled": False, "interval_seconds": 2},
        ],
    )
    defs = compile_flows(spec)
    first, second = defs.resolve_sensor_def("props_event_sensor"), defs.resolve_sensor_def("props_event_sensor_2")
    assert first.minimum_interval_seconds == 7 and second.minimum_interval_seconds == 2
    assert first.default_status == dg.DefaultSensorStatus.RUNNING
    assert second.default_status == dg.DefaultSensorStatus.STOPPED
    assert first.job_name == "props"


def test_event_trigger_params_are_checked_when_the_flow_loads():
    spec = flow_spec(
        "bad",
        params=PARAMS,
        triggers=[
            {"type": "schedule", "cron": "0 * * * *", "params": {"region": "EU"}},
            {"type": "event", "topics": ["a.*"], "params": {"n": "x"}},
        ],
    )
    with pytest.raises(ValueError) as caught:
        compile_flows(spec)
    # Validation checks a trigger's params before the trigger is built (dp validate tells the truth).
    assert "flow 'bad', field 'triggers[1].params': the params do not fit flow 'bad': n:" in str(caught.value)
