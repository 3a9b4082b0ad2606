"""``event`` triggers: a sensor that reads the event bus after its cursor and starts one run per
matching event.

Exactly once (reliability tests E1, F3): the run key is the event id, so Dagster's sensor daemon
never creates a second run for an event, whether a tick is repeated, the daemon was killed
before it stored the cursor, or the bus returned the event again. The cursor is the id of the
last event *scanned* (``EventPage.cursor``) and is set explicitly at the end of every tick,
together with the run requests; the daemon stores both atomically with the tick and re-submits
reserved runs of an interrupted tick, so no event is skipped either.

The dispatcher (``dp dispatch``, :mod:`dp_sensors.events.dispatcher`) starts the same runs as
events arrive. The two agree through claims on the bus (``EventBus.claim_many``, consumer = the
sensor's name): the sensor requests only the events it claimed first and leaves those the
dispatcher claimed, so one event gives one run whichever of them sees it first; the dispatcher's
runs carry this sensor's name and run key too, so Dagster's run-key check holds as well.

An event whose payload does not fit the flow's params is recorded on the bus as a rejection
(``dp events rejections --consumer <sensor>``) and starts nothing; it does not fail the tick, so
the events after it still run. Errors of the bus itself (unreachable, bad cursor) do fail the
tick and the cursor stays where it was.
"""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg

from dp_sensors.triggers.common import indexed, sensor_interval, sensor_status
from dp_sensors.triggers.params import (
    ParamsRejected,
    check_fixed_params,
    params_from_event,
)
from dp_sensors.triggers.policy import (
    EVENT_ID_TAG,
    EVENT_TOPIC_TAG,
    TRIGGER_TAG,
    busy_reason,
    runs_in_progress,
)

EVENT_BUS_RESOURCE = "event_bus"
EVENTS_PER_TICK = 200
FROM_START = "@start"  # cursor of a 'start: latest' sensor that began on an empty bus
#: Owners of an event's claim (``EventBus.claim_many``): who starts its run.
SENSOR_OWNER = "sensor"
DISPATCHER_OWNER = "dispatcher"
log = logging.getLogger("dp_sensors.events")


def webhook_topic(flow_id: str) -> str:
    """The topic of ``POST /hooks/<flow id>`` (same rule as ``dp_sensors.webhook``)."""
    return f"webhook.{flow_id}"


def accepts_webhooks(flow: Any) -> bool:
    """True when an enabled event trigger of the flow listens to its webhook topic."""
    from dp_sensors.events.topics import matches_any

    topic = webhook_topic(flow.id)
    return any(t.type == "event" and t.enabled and matches_any(t.topics, topic) for t in flow.triggers)


def event_run_tags(event: Any) -> dict[str, str]:
    """The tags of an event's run, whether the sensor or the dispatcher starts it."""
    return {TRIGGER_TAG: "event", EVENT_ID_TAG: event.id, EVENT_TOPIC_TAG: event.topic}


def event_sensor_name(flow_id: str, index: int) -> str:
    return indexed(f"{flow_id}_event_sensor", index)


def build_event_sensor(
    flow: Any, trigger: Any, index: int, *, events_per_tick: int = EVENTS_PER_TICK
) -> dg.SensorDefinition:
    try:
        check_fixed_params(flow.id, flow.params, trigger.params)
    except ParamsRejected as exc:
        raise ValueError(str(exc)) from None
    name = event_sensor_name(flow.id, index)
    patterns = list(trigger.topics)
    skip_when_running = flow.policies.when_running == "skip"
    own_webhook = webhook_topic(flow.id)

    @dg.sensor(
        name=name,
        job_name=flow.id,
        minimum_interval_seconds=sensor_interval(trigger.interval_seconds),
        default_status=sensor_status(trigger.enabled),
        required_resource_keys={EVENT_BUS_RESOURCE},
        description=f"Starts flow '{flow.id}' once per event on {', '.join(patterns)}.",
    )
    def _event_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        with context.resources.event_bus.open_bus() as bus:
            cursor = context.cursor
            if cursor is None and trigger.start == "latest":
                latest = bus.latest_cursor()
                return dg.SensorResult(
                    skip_reason=f"starting after event {latest or '(none yet)'} (start: latest)",
                    cursor=latest or FROM_START,
                )
            page = bus.read_page(None if cursor == FROM_START else cursor, patterns=patterns, limit=events_per_tick)
            busy = runs_in_progress(context.instance, flow.id) if skip_when_running else 0
            requests: list[dg.RunRequest] = []
            for event in page.events:
                try:
                    run_config = params_from_event(
                        flow.id, flow.params, event.topic == own_webhook, event.data, trigger.params
                    )
                except ParamsRejected as exc:
                    bus.record_rejection(event.id, name, str(exc))
                    context.log.warning(f"event {event.id} on '{event.topic}' rejected: {exc}")
                    continue
                if skip_when_running and (busy or requests):
                    reason = busy_reason(flow.id, busy or len(requests))
                    bus.record_rejection(event.id, name, f"skipped: {reason}")
                    continue
                requests.append(dg.RunRequest(run_key=event.id, run_config=run_config, tags=event_run_tags(event)))
            if requests:
                holders = bus.claim_many([str(r.run_key) for r in requests], name, SENSOR_OWNER)
                requests = [r for r in requests if holders[str(r.run_key)] == SENSOR_OWNER]
        new_cursor = page.cursor if page.cursor is not None else cursor
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        return dg.SensorResult(
            skip_reason=f"no new events on {', '.join(patterns)} after {cursor or 'the start'}",
            cursor=new_cursor,
        )

    return _event_sensor
