"""The event dispatcher (``dp dispatch``): starts the runs of event triggers as events arrive.

An event sensor sees an event at its next tick (``DP_SENSOR_INTERVAL_SECONDS``, 30 s by default)
and Dagster's daemon then creates the run; the dispatcher follows the bus instead (a Redis
Streams consumer group, PostgreSQL ``LISTEN``, or polling on SQLite: :mod:`.dispatcher_followers`)
and launches each matching trigger's run at once through the webserver's GraphQL API. The
sensors stay as they are, as the fallback for events the dispatcher never saw (it was down).

**One event, one run.** The dispatcher and the sensor claim an event on the bus
(``EventBus.claim_many``, consumer = the sensor's name) before starting its run; only the first
claimant starts it. The dispatcher's run carries the sensor's tags and run key (``dagster/run_key``
= the event id, ``dagster/sensor_name``), and before launching it looks for a run with both, so a
run created by a dispatcher that was killed right after the launch is found instead of repeated.

**Nothing lost on kill -9.** An event is acknowledged (Redis ``XACK``, the SQL follower's stored
cursor) only after every run it starts exists. A dispatcher killed mid-batch gets the
unacknowledged events again when it restarts, finds its own claims, and creates only the runs
that do not exist yet.

Flows with ``policies.when_running: skip`` are left to their sensor (the skip is decided against
the runs in progress, which only the daemon's tick sees consistently).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from dp_sensors.events.base import Event, EventBus
from dp_sensors.events.topics import matches_any
from dp_sensors.triggers.events import DISPATCHER_OWNER, webhook_topic
from dp_sensors.triggers.params import ParamsRejected, params_from_event

log = logging.getLogger("dp_sensors.events.dispatcher")

BATCH = 100
RETRY_SECONDS = 2.0
TARGETS_REFRESH_SECONDS = 5.0
LAUNCH_THREADS = 4


@dataclass(frozen=True)
class EventTarget:
    """One enabled event trigger of a published flow, as its sensor sees it."""

    flow_id: str
    sensor_name: str
    patterns: tuple[str, ...]
    params: Mapping[str, Any]  # the flow's param declarations
    trigger_params: Any  # the trigger's fixed params / mapping
    skip_when_running: bool = False


class LaunchRefused(Exception):
    """The run can never be created for this event (no such flow in the code location, params
    refused): recorded as a rejection, the event is acknowledged."""


class EventLauncher(Protocol):
    def __call__(self, target: EventTarget, event: Event, run_config: dict[str, Any]) -> str:
        """Create the event's run for ``target`` unless it exists; its run id. Raises
        :class:`LaunchRefused` for a permanent refusal, anything else for a passing failure."""
        ...


class Follower(Protocol):
    """Events in bus order, at least once, until acknowledged."""

    def fetch(self, wait_seconds: float) -> list[Event]:
        """The next events (first those delivered before and not acknowledged), waiting up to
        ``wait_seconds`` for one."""
        ...

    def ack(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


class Dispatcher:
    """Reads events from ``follower``, starts the runs of ``targets()``, acknowledges."""

    def __init__(
        self,
        bus: EventBus,
        follower: Follower,
        targets: Callable[[], list[EventTarget]],
        launcher: EventLauncher,
        *,
        refresh_seconds: float = TARGETS_REFRESH_SECONDS,
        threads: int = LAUNCH_THREADS,
    ) -> None:
        self.bus, self.follower, self.launcher = bus, follower, launcher
        self._targets_source = targets
        self._targets: list[EventTarget] = []
        self._targets_at = -float("inf")
        self.refresh_seconds = refresh_seconds
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dp-dispatch")
        self.runs_started = 0

    def targets(self) -> list[EventTarget]:
        """The event triggers of the published flows, read again every ``refresh_seconds``."""
        if time.monotonic() - self._targets_at >= self.refresh_seconds:
            self._targets = [t for t in self._targets_source() if not t.skip_when_running]
            self._targets_at = time.monotonic()
        return self._targets

    def handle(self, events: Sequence[Event]) -> int:
        """Start the runs ``events`` call for; returns how many it created or found. Raises when
        a launch failed for a passing reason: nothing is acknowledged then."""
        jobs: list[tuple[EventTarget, Event, dict[str, Any]]] = []
        for target in self.targets():
            wanted: list[tuple[Event, dict[str, Any]]] = []
            for event in events:
                if not matches_any(list(target.patterns), event.topic):
                    continue
                try:
                    run_config = params_from_event(
                        target.flow_id,
                        target.params,
                        event.topic == webhook_topic(target.flow_id),
                        event.data,
                        target.trigger_params,
                    )
                except ParamsRejected as exc:  # as the sensor records it, under its name
                    self.bus.record_rejection(event.id, target.sensor_name, str(exc))
                    continue
                wanted.append((event, run_config))
            if not wanted:
                continue
            holders = self.bus.claim_many([e.id for e, _ in wanted], target.sensor_name, DISPATCHER_OWNER)
            jobs += [(target, e, config) for e, config in wanted if holders[e.id] == DISPATCHER_OWNER]
        results = list(self._pool.map(lambda job: self._launch(*job), jobs))
        return sum(results)

    def _launch(self, target: EventTarget, event: Event, run_config: dict[str, Any]) -> int:
        try:
            run_id = self.launcher(target, event, run_config)
        except LaunchRefused as exc:
            log.warning("event %s on %r: %s", event.id, event.topic, exc)
            self.bus.record_rejection(event.id, target.sensor_name, f"dispatcher: {exc}")
            return 0
        log.info("event %s on %r started run %s of flow %r", event.id, event.topic, run_id, target.flow_id)
        return 1

    def run_once(self, wait_seconds: float = 1.0) -> int:
        """One batch: fetch, start its runs, acknowledge. Returns the runs started."""
        events = self.follower.fetch(wait_seconds)
        if not events:
            return 0
        started = self.handle(events)
        self.follower.ack(events)
        self.runs_started += started
        return started

    def run(
        self, stop: threading.Event, wait_seconds: float = 1.0, heartbeat: Callable[[], None] | None = None
    ) -> None:
        """Dispatch until ``stop`` is set; a failing batch is retried (it was not acknowledged).
        ``heartbeat`` is called after every batch or idle wait (a liveness probe's file)."""
        while not stop.is_set():
            try:
                self.run_once(wait_seconds)
                if heartbeat is not None:
                    heartbeat()
            except Exception:
                log.exception("dispatching failed; retrying in %.0f s (the events stay unacknowledged)", RETRY_SECONDS)
                stop.wait(RETRY_SECONDS)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.follower.close()
