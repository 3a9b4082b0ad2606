"""How the dispatcher follows each bus, and how it launches: see :mod:`.dispatcher`.

- Redis Streams: a consumer group (``dp-dispatcher``) created at the stream's end; the one
  consumer name is stable, so a restarted dispatcher reads what it held unacknowledged first.
- SQL: the follower's cursor is a row of ``dp_dispatcher_cursors`` in the bus's database, stored
  only when a batch is done; on PostgreSQL it waits on ``LISTEN dp_events`` (every publish
  notifies at commit), on SQLite it polls.
"""

from __future__ import annotations

import select
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dp_sensors.events.base import Event, EventBus
from dp_sensors.events.dispatcher import BATCH, EventTarget, LaunchRefused
from dp_sensors.events.sql import NOTIFY_CHANNEL, SqlEventBus, create_tables, insert_ignoring_duplicates
from dp_sensors.launch import GraphQLClient, LaunchError, RunConfigRejected
from dp_sensors.triggers.events import event_run_tags

GROUP = "dp-dispatcher"
CONSUMER = "dispatcher"
SQLITE_POLL_SECONDS = 0.2
#: The tags Dagster's sensor daemon puts on a sensor's run and checks run keys by.
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"

_cursors_meta = sa.MetaData()
cursors_table = sa.Table(
    "dp_dispatcher_cursors",
    _cursors_meta,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("cursor", sa.String(64), nullable=True),
)


class RedisGroupFollower:
    def __init__(self, bus: Any, *, group: str = GROUP, consumer: str = CONSUMER, batch: int = BATCH) -> None:
        self.bus, self.group, self.consumer, self.batch = bus, group, consumer, batch
        bus.ensure_group(group)

    def fetch(self, wait_seconds: float) -> list[Event]:
        held = self.bus.read_group(self.group, self.consumer, pending=True, count=self.batch, block_ms=None)
        if held:
            return held
        block = max(1, int(wait_seconds * 1000))
        return self.bus.read_group(self.group, self.consumer, pending=False, count=self.batch, block_ms=block)

    def ack(self, events: Sequence[Event]) -> None:
        self.bus.ack(self.group, [e.id for e in events])

    def close(self) -> None:
        pass


class SqlFollower:
    """Reads ``dp_events`` after its stored cursor (first start: after the newest event)."""

    def __init__(self, bus: SqlEventBus, *, name: str = CONSUMER, batch: int = BATCH) -> None:
        self.bus, self.name, self.batch = bus, name, batch
        create_tables(bus.engine, _cursors_meta)
        with bus.engine.begin() as conn:
            insert_ignoring_duplicates(conn, cursors_table, {"name": name, "cursor": bus.latest_cursor()})
            self.cursor: str | None = conn.execute(
                sa.select(cursors_table.c.cursor).where(cursors_table.c.name == name)
            ).scalar_one()
        self._listener: Any = None
        if bus.engine.dialect.name == "postgresql":
            self._listener = bus.engine.raw_connection()
            self._listener.driver_connection.autocommit = True
            with self._listener.driver_connection.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def _read(self) -> list[Event]:
        return self.bus.read_page(self.cursor, limit=self.batch).events

    def _wait(self, seconds: float) -> None:
        if self._listener is None:
            time.sleep(min(seconds, SQLITE_POLL_SECONDS))
            return
        connection = self._listener.driver_connection
        if not connection.notifies:
            select.select([connection], [], [], seconds)
            connection.poll()
        connection.notifies.clear()

    def fetch(self, wait_seconds: float) -> list[Event]:
        deadline = time.monotonic() + wait_seconds
        while True:
            events = self._read()
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            self._wait(left)

    def ack(self, events: Sequence[Event]) -> None:
        if not events:
            return
        self.cursor = events[-1].id
        with self.bus.engine.begin() as conn:
            conn.execute(cursors_table.update().where(cursors_table.c.name == self.name).values(cursor=self.cursor))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()


def follower_for(bus: EventBus) -> RedisGroupFollower | SqlFollower:
    if isinstance(bus, SqlEventBus):
        return SqlFollower(bus)
    return RedisGroupFollower(bus)


RUNS_WITH_TAGS = """
query RunsWithTags($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on PythonError { message }
  }
}
"""


class GraphQLEventLauncher:
    """Launches an event's run through the webserver's GraphQL API, with the sensor's tags."""

    def __init__(self, client: GraphQLClient) -> None:
        self.client = client

    def existing_run(self, target: EventTarget, event: Event) -> str | None:
        tags = [{"key": RUN_KEY_TAG, "value": event.id}, {"key": SENSOR_NAME_TAG, "value": target.sensor_name}]
        found = self.client.execute(RUNS_WITH_TAGS, {"filter": {"tags": tags, "pipelineName": target.flow_id}})
        runs = found["runsOrError"]
        if runs["__typename"] != "Runs":
            raise LaunchError(f"cannot list runs: {runs.get('message')}")
        return runs["results"][0]["runId"] if runs["results"] else None

    def __call__(self, target: EventTarget, event: Event, run_config: dict[str, Any]) -> str:
        existing = self.existing_run(target, event)
        if existing:
            return existing
        tags = {**event_run_tags(event), RUN_KEY_TAG: event.id, SENSOR_NAME_TAG: target.sensor_name}
        try:
            return self.client.launch_run(target.flow_id, run_config, tags)
        except RunConfigRejected as exc:
            raise LaunchRefused(str(exc)) from None
        except LaunchError as exc:
            if str(exc).startswith("no flow "):  # not in the code location (failed to load?)
                raise LaunchRefused(str(exc)) from None
            raise
