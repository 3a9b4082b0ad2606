"""Workload 5c: ``events`` events -> exactly ``events`` runs, with ``dp dispatch`` killed -9 half
way (issue 19: 10,000 events, the full size; ``--set events_exactly_once.events=N``).

A real ``dagster-daemon`` and ``dagster-webserver`` on ``dp init-home``'s instance, the flow's
event sensor ticking every second (the fallback, racing the dispatcher for every event), and
``dp dispatch`` following the bus (the embedded default's SQL bus on the flow store; Redis
Streams too with ``--set events_exactly_once.bus=redis``). All events are published at once
(``publish_many``); when half of them have a run the dispatcher is killed with SIGKILL and
started again. The run queue is closed (``max_concurrent_runs: 0``): runs are created, not
executed; how fast runs execute is workload 13's question, and 10,000 executions would take this
machine most of an hour.

Check: once every event has a run and the sensor has scanned past the last event (whatever it
would start, it has started), exactly one run per event, run keys = event ids, and no run that
is not an event's. Reported: runs created per second from the first publish to the last run,
how long the dispatcher was down, how many runs the sensor created meanwhile.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

from bench.results import WorkloadResult

if TYPE_CHECKING:
    from bench.registry import RunContext

TITLE = "5c. Events -> exactly one run each, dispatcher killed -9 half way"
FLOW_ID = "bench_exactly_once"
TOPIC = "bench.once.created"
SENSOR = f"{FLOW_ID}_event_sensor"


def flow_spec() -> dict[str, Any]:
    from bench.workloads.events import flow_spec as event_flow

    return event_flow(FLOW_ID, "bench.once.*")


def _closed_queue(config: dict[str, Any]) -> None:
    config["run_coordinator"]["config"]["max_concurrent_runs"] = 0  # runs are created, never launched


def _runs_by_event(instance: Any) -> Counter[str]:
    import dagster as dg

    runs = instance.get_runs(dg.RunsFilter(job_name=FLOW_ID))
    return Counter(run.tags.get("dp/event_id", "?") for run in runs)


def _sensor_cursor(instance: Any) -> str | None:
    for state in instance.all_instigator_state():
        if state.instigator_name == SENSOR and state.instigator_data is not None:
            return state.instigator_data.cursor
    return None


def measure(events: int, bus: str) -> dict[str, Any]:
    """Child entry point. ``bus``: ``sql`` (the flow store's) or ``redis``."""
    import dagster as dg

    from bench.live import live_platform
    from bench.workloads.events import redis_url
    from bench.workloads.events_e2e import BIN
    from dp_sensors.events import EventBusResource

    env = {"DP_SENSOR_INTERVAL_SECONDS": "1"}
    if bus == "redis":
        env["DP_EVENTS_URL"] = f"{redis_url()}?stream=dp:bench:{uuid.uuid4().hex[:12]}"
    with live_platform("dp-bench-once-", [flow_spec()], instance=_closed_queue, env=env) as live:
        dispatch = [str(BIN / "dp"), "dispatch", "--dagster-url", live.graphql_url]

        def start_dispatcher(name: str) -> Any:
            proc = live.start(name, dispatch)
            live.wait("the dispatcher to follow the bus", lambda: "following" in live.log_text(name))
            return proc

        with dg.DagsterInstance.get() as instance:
            dispatcher = start_dispatcher("dispatch")
            began = time.time()
            with EventBusResource().open_bus() as event_bus:
                published = event_bus.publish_many([(TOPIC, {"order": i}) for i in range(events)])
            publish_seconds = time.time() - began
            created = lambda: instance.get_runs_count(dg.RunsFilter(job_name=FLOW_ID))  # noqa: E731
            live.wait("half of the runs", lambda: created() >= events // 2, timeout=600 + events, every=0.02)
            live.kill(dispatcher)  # kill -9 with a batch in hand
            killed_at, runs_at_kill = time.time(), created()
            before_kill = killed_at - began
            start_dispatcher("dispatch-restarted")
            down = time.time() - killed_at
            runs_while_down = created() - runs_at_kill
            live.wait("a run for every event", lambda: created() >= events, timeout=600 + 2 * events)
            all_created = time.time() - began
            last = published[-1].id
            live.wait("the sensor to scan every event", lambda: _sensor_cursor(instance) == last, timeout=600 + events)
            time.sleep(2)  # a launch in flight when the sensor moved its cursor lands now, if any
            counts = _runs_by_event(instance)
    ids = {event.id for event in published}
    return {
        "events": events,
        "bus": bus,
        "published": len(ids),
        "runs": sum(counts.values()),
        "events_with_one_run": sum(1 for i in ids if counts[i] == 1),
        "events_without_run": sum(1 for i in ids if counts[i] == 0),
        "events_with_more": sum(1 for i in ids if counts[i] > 1),
        "stray_runs": sum(n for key, n in counts.items() if key not in ids),
        "publish_seconds": publish_seconds,
        "all_created_seconds": all_created,
        "runs_at_kill": runs_at_kill,
        "before_kill_seconds": before_kill,
        "dispatcher_down_seconds": down,
        "runs_while_down": runs_while_down,
    }


def run(ctx: RunContext) -> WorkloadResult:
    from bench.child import run_child

    events = ctx.param("events_exactly_once.events", 40 if ctx.smoke else 10_000)
    bus = ctx.param("events_exactly_once.bus", "sql")
    data = run_child("bench.workloads.events_exactly_once:measure", {"events": events, "bus": bus})
    exact = data["events_with_one_run"] == data["published"] == events and data["runs"] == events
    check = (
        "ok"
        if exact
        else f"FAILED: {data['runs']} runs for {events} events: {data['events_without_run']} without a run, "
        f"{data['events_with_more']} with more than one, {data['stray_runs']} runs of no event"
    )
    case = f"{events:,} events, {'SQL bus on the SQLite flow store' if bus == 'sql' else 'Redis Streams bus'}"
    return WorkloadResult(
        "events_exactly_once",
        TITLE,
        rows=[
            ctx.row(
                "events_exactly_once",
                case,
                "runs created per second (publish -> every event's run exists)",
                events / data["all_created_seconds"],
                "runs/s",
                target="exactly one run per event",
                met=exact,
                check=check,
                notes=f"{data['runs']:,} runs in {data['all_created_seconds']:.0f} s (before the kill "
                f"{data['runs_at_kill'] / data['before_kill_seconds']:.1f} runs/s); dp dispatch killed -9 at "
                f"{data['runs_at_kill']:,} runs, down {data['dispatcher_down_seconds']:.1f} s (the sensor created "
                f"{data['runs_while_down']:,} meanwhile); sensor every 1 s racing it; the run queue closed "
                f"(runs created, not executed: workload 13); publish_many {data['publish_seconds']:.1f} s",
            )
        ],
    )
