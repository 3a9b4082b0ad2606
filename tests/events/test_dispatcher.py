"""``dp dispatch`` as a real process beside a real ``dagster dev`` (webserver, daemon, sensors).

One event gives exactly one run whether the dispatcher, the event sensor (ticking every 5 s here)
or both see it, also when the dispatcher is killed -9 half way through a batch and started
again; on Redis Streams (consumer group), PostgreSQL (LISTEN/NOTIFY) and SQLite (polling).
"""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from dp_assets.cli.home import prepare_instance
from dp_sensors.events.factory import event_bus_from_url
from tests.support.dagster_processes import DagsterPlatform
from tests.support.processes import ManagedProcess, start_process, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

EVENTS = 24
ON_ORDER = {
    "id": "on_order",
    "params": {"order_id": {"type": "integer", "required": True}},
    "triggers": [{"type": "event", "topics": ["orders.*"]}],
    "nodes": [{"id": "rows", "type": "StaticData", "params": {"rows": [{"n": 1}]}}],
}
SENSOR = "on_order_event_sensor"


@pytest.fixture(
    scope="module",
    params=["redis", pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"],
)
def platform(request, tmp_path_factory) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp(f"dispatch_{request.param}")
    flows = root / "flows"
    flows.mkdir()
    (flows / "on_order.yaml").write_text(yaml.safe_dump(ON_ORDER, sort_keys=False))
    if request.param == "redis":
        events_url = f"{request.getfixturevalue('redis_url')}?stream=dp:test:{uuid.uuid4().hex[:12]}"
    elif request.param == "postgres":
        events_url = request.getfixturevalue("pg_schema_url_module")
    else:
        events_url = f"sqlite:///{root / 'events.db'}"
    platform = DagsterPlatform(
        root=root,
        flows=flows,
        extra_env={"DP_EVENTS_URL": events_url, "DP_SENSOR_INTERVAL_SECONDS": "5"},
    )
    prepare_instance(platform.dagster_home)
    try:
        platform.start_dev()
        yield platform
    finally:
        platform.stop()


def start_dispatcher(platform: DagsterPlatform, name: str = "dispatch") -> ManagedProcess:
    env = {**platform.env, "DP_DAGSTER_GRAPHQL_URL": platform.graphql_url}
    process = start_process(
        name, [sys.executable, "-m", "dp_assets.cli", "dispatch"], env=env, log_dir=platform.root / "logs"
    )
    platform.processes.append(process)
    wait_for("the dispatcher to follow the bus", lambda: "following" in process.log_tail(), process=process)
    return process


def runs_by_event(platform: DagsterPlatform) -> Counter[str]:
    import dagster as dg

    with platform.instance() as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="on_order"))
    return Counter(run.tags.get("dp/event_id", "?") for run in runs)


def sensor_cursor(platform: DagsterPlatform) -> str | None:
    with platform.instance() as instance:
        for state in instance.all_instigator_state():
            if state.instigator_name == SENSOR and state.instigator_data is not None:
                return state.instigator_data.cursor  # type: ignore[attr-defined]
    return None


def publish(platform: DagsterPlatform, count: int) -> list[Any]:
    bus = event_bus_from_url(platform.env["DP_EVENTS_URL"])
    bus.ensure_schema()
    try:
        return bus.publish_many([("orders.created", {"order_id": i}) for i in range(count)], source="test")
    finally:
        bus.close()


def test_an_event_starts_one_run_with_the_sensors_run_key(platform):
    dispatcher = start_dispatcher(platform)
    try:
        (event,) = publish(platform, 1)
        wait_for(
            "the event's run", lambda: runs_by_event(platform)[event.id], process=dispatcher, on_timeout=platform.logs
        )
        with platform.instance() as instance:
            import dagster as dg

            (run,) = instance.get_runs(dg.RunsFilter(tags={"dp/event_id": event.id}))
        assert run.tags["dagster/run_key"] == event.id and run.tags["dagster/sensor_name"] == SENSOR
        assert run.tags["dp/trigger"] == "event" and run.run_config == {"order_id": 0}
    finally:
        dispatcher.stop()


def test_kill_9_half_way_loses_no_event_and_doubles_none(platform):
    before = runs_by_event(platform)
    dispatcher = start_dispatcher(platform, "dispatch-killed")
    events = publish(platform, EVENTS)
    ids = {e.id for e in events}

    def some_started() -> bool:
        return sum(runs_by_event(platform)[i] for i in ids) >= EVENTS // 4

    wait_for("a quarter of the runs", some_started, every=0.05, process=dispatcher, on_timeout=platform.logs)
    dispatcher.kill()  # kill -9, mid-batch: the batch in hand is unacknowledged
    restarted = start_dispatcher(platform, "dispatch-restarted")
    try:
        wait_for(
            "a run for every event",
            lambda: all(runs_by_event(platform)[i] for i in ids),
            timeout=900,
            process=restarted,
            on_timeout=platform.logs,
        )
        # The sensor, ticking all along, has scanned past the last event: whatever it would
        # start, it has started.
        wait_for(
            "the sensor to scan every event",
            lambda: sensor_cursor(platform) == events[-1].id,
            timeout=600,
            on_timeout=platform.logs,
        )
    finally:
        restarted.stop()
    counts = runs_by_event(platform)
    assert {i: counts[i] for i in ids} == dict.fromkeys(ids, 1)
    assert {k: v for k, v in counts.items() if k not in ids} == before
