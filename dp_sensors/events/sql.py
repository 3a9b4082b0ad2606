"""The event bus as a table in the platform's database (SQLite by default, or PostgreSQL).

Why the ordering is safe: a reader keeps the highest id it has seen, so an event must never
become visible *after* a higher id did. With a plain autoincrement that can happen on PostgreSQL
(transaction A takes id 5, B takes 6 and commits first, a reader moves past 6, then 5 appears and
is never read). Publishers therefore take a transaction-scoped advisory lock before inserting, so
ids are handed out and committed in one order. SQLite serialises writers by itself.

Why every write starts with a write: on SQLite a transaction that reads first and then writes
cannot wait for the write lock (SQLite returns "database is locked" at once to avoid a deadlock),
so inserts come first and duplicates are detected by the unique constraint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool

from dp_sensors.events.base import (
    Event,
    EventBusError,
    EventPage,
    Rejection,
    check_key,
    check_limit,
    normalise_data,
)
from dp_sensors.events.topics import matches_any, validate_patterns, validate_topic

_ADVISORY_LOCK_KEY = 0x64705F6576656E74  # "dp_event": serialises publishers on PostgreSQL
#: PostgreSQL channel notified (at commit) by every publish, so a follower wakes at once.
NOTIFY_CHANNEL = "dp_events"
_SCAN_BATCH = 1000

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

events_table = sa.Table(
    "dp_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(255), nullable=True),
    sa.Column("dedupe_key", sa.String(255), nullable=True),
    sa.UniqueConstraint("dedupe_key", name="uq_dp_events_dedupe_key"),
    sqlite_autoincrement=True,  # never reuse the id of a deleted event: ids are run keys
)

rejections_table = sa.Table(
    "dp_event_rejections",
    metadata,
    sa.Column("event_id", BigId, nullable=False),
    sa.Column("consumer", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_dp_event_rejections"),
    sa.Index("ix_dp_event_rejections_event_id", "event_id"),
)

claims_table = sa.Table(
    "dp_event_claims",
    metadata,
    sa.Column("event_id", BigId, nullable=False),
    sa.Column("consumer", sa.String(255), nullable=False),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_dp_event_claims"),
)


def create_sql_engine(url: str) -> sa.Engine:
    """An engine fit for several threads: SQLite waits for locks instead of failing at once."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool  # one shared in-memory database, not one per connection
    return sa.create_engine(url, **kwargs)


def create_tables(engine: sa.Engine, meta: sa.MetaData) -> None:
    """``create_all`` that tolerates another process creating the same tables at the same time."""
    for attempt in range(3):
        try:
            meta.create_all(engine)
            return
        except (IntegrityError, ProgrammingError, OperationalError):
            if attempt == 2:
                raise


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; the bus stores UTC, so naive means UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table, values: dict) -> int:
    """INSERT that does nothing when the primary key exists; returns the rows inserted."""
    if conn.dialect.name == "sqlite":
        return conn.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing()).rowcount
    if conn.dialect.name == "postgresql":
        return conn.execute(postgresql_insert(table).values(**values).on_conflict_do_nothing()).rowcount
    try:
        with conn.begin_nested():
            return conn.execute(table.insert().values(**values)).rowcount
    except IntegrityError:
        return 0


class SqlEventBus:
    """Events in the ``dp_events`` table; ids come from its autoincrement, so order is total.

    Call :meth:`ensure_schema` once (the CLI and the resource do) before the first use.
    """

    def __init__(self, url: str | sa.Engine) -> None:
        if isinstance(url, sa.Engine):
            self._engine, self._owns_engine = url, False
        else:
            self._engine, self._owns_engine = create_sql_engine(url), True

    def __repr__(self) -> str:
        return f"SqlEventBus({self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def ensure_schema(self) -> None:
        create_tables(self._engine, metadata)

    def close(self) -> None:
        if self._owns_engine:
            self._engine.dispose()

    def _lock(self, conn: sa.Connection) -> None:
        """Serialise publishers (PostgreSQL) and notify followers when the transaction commits."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK_KEY)))
            conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        source: str | None = None,
    ) -> Event:
        validate_topic(topic)
        payload = normalise_data(topic, data)
        check_key(dedupe_key, "dedupe_key")
        check_key(source, "source")
        row = {
            "topic": topic,
            "data": payload,
            "published_at": datetime.now(UTC),
            "source": source,
            "dedupe_key": dedupe_key,
        }
        try:
            with self._engine.begin() as conn:
                self._lock(conn)
                new_id = conn.execute(events_table.insert().values(**row).returning(events_table.c.id)).scalar_one()
        except IntegrityError:
            if dedupe_key is None:
                raise
            original = self._by_dedupe_key(dedupe_key)
            if original is None:
                raise EventBusError(
                    f"publishing to {topic!r} with dedupe_key {dedupe_key!r} hit the unique "
                    "constraint but no event has that key; check the dp_events table"
                ) from None
            return original
        return Event(id=str(new_id), **row)

    def publish_many(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, source: str | None = None) -> list[Event]:
        check_key(source, "source")
        now = datetime.now(UTC)
        rows = [
            {
                "topic": validate_topic(topic),
                "data": normalise_data(topic, data),
                "published_at": now,
                "source": source,
                "dedupe_key": None,
            }
            for topic, data in items
        ]
        if not rows:
            return []
        with self._engine.begin() as conn:
            self._lock(conn)
            ids = (
                conn.execute(
                    events_table.insert().returning(events_table.c.id, sort_by_parameter_order=True),
                    rows,
                )
                .scalars()
                .all()
            )
        return [Event(id=str(i), **row) for i, row in zip(ids, rows, strict=True)]

    def _by_dedupe_key(self, dedupe_key: str) -> Event | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(events_table).where(events_table.c.dedupe_key == dedupe_key)).one_or_none()
        return None if row is None else self._to_event(row)

    @staticmethod
    def _to_event(row: sa.Row) -> Event:
        return Event(
            id=str(row.id),
            topic=row.topic,
            data=row.data,
            published_at=as_utc(row.published_at),
            source=row.source,
            dedupe_key=row.dedupe_key,
        )

    @staticmethod
    def _parse_id(value: str, what: str) -> int:
        if not isinstance(value, str) or not value.isdigit():
            raise ValueError(
                f"{what} {value!r} is not an id of the SQL event bus (ids are integers); "
                "was it written by another bus, such as the Redis one?"
            )
        return int(value)

    def read_page(
        self,
        cursor: str | None,
        *,
        patterns: Sequence[str] | None = None,
        limit: int = 1000,
        max_scan: int | None = None,
    ) -> EventPage:
        """Scan forward from ``cursor`` until ``limit`` matches, the end, or ``max_scan`` rows."""
        selected = validate_patterns(patterns)
        check_limit(limit)
        after = -1 if cursor is None else self._parse_id(cursor, "cursor")
        found: list[Event] = []
        last = cursor
        scanned = 0
        batch = limit if selected is None else max(limit, _SCAN_BATCH)
        with self._engine.connect() as conn:
            while True:
                if max_scan is not None:
                    batch = min(batch, max_scan - scanned)
                    if batch <= 0:
                        return EventPage(events=found, cursor=last, exhausted=False)
                rows = conn.execute(
                    sa.select(events_table).where(events_table.c.id > after).order_by(events_table.c.id).limit(batch)
                ).all()
                for row in rows:
                    after, last = row.id, str(row.id)
                    scanned += 1
                    if matches_any(selected, row.topic):
                        found.append(self._to_event(row))
                        if len(found) == limit:
                            return EventPage(events=found, cursor=last, exhausted=False)
                if len(rows) < batch:
                    return EventPage(events=found, cursor=last, exhausted=True)

    def read_after(
        self, cursor: str | None, *, patterns: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        return self.read_page(cursor, patterns=patterns, limit=limit).events

    def get(self, event_id: str) -> Event | None:
        key = self._parse_id(event_id, "event id")
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(events_table).where(events_table.c.id == key)).one_or_none()
        return None if row is None else self._to_event(row)

    def latest_cursor(self) -> str | None:
        with self._engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(events_table.c.id))).scalar()
        return None if value is None else str(value)

    def record_rejection(self, event_id: str, consumer: str, reason: str) -> None:
        key = self._parse_id(event_id, "event id")
        check_key(consumer, "consumer")
        with self._engine.begin() as conn:
            insert_ignoring_duplicates(
                conn,
                rejections_table,
                {
                    "event_id": key,
                    "consumer": consumer,
                    "reason": str(reason),
                    "rejected_at": datetime.now(UTC),
                },
            )

    def claim_many(self, event_ids: Sequence[str], consumer: str, owner: str) -> dict[str, str]:
        keys = {event_id: self._parse_id(event_id, "event id") for event_id in event_ids}
        check_key(consumer, "consumer")
        check_key(owner, "owner")
        if not keys:
            return {}
        now = datetime.now(UTC)
        table = claims_table
        with self._engine.begin() as conn:  # inserts first (see the module docstring)
            for key in keys.values():
                values = {"event_id": key, "consumer": consumer, "owner": owner, "claimed_at": now}
                insert_ignoring_duplicates(conn, table, values)
            rows = conn.execute(
                sa.select(table.c.event_id, table.c.owner).where(
                    table.c.consumer == consumer, table.c.event_id.in_(list(keys.values()))
                )
            ).all()
        holders = {row.event_id: row.owner for row in rows}
        return {event_id: holders[key] for event_id, key in keys.items()}

    def rejections(
        self, *, consumer: str | None = None, event_id: str | None = None, limit: int = 1000
    ) -> list[Rejection]:
        check_limit(limit)
        query = sa.select(rejections_table)
        if consumer is not None:
            query = query.where(rejections_table.c.consumer == consumer)
        if event_id is not None:
            query = query.where(rejections_table.c.event_id == self._parse_id(event_id, "event id"))
        order = (rejections_table.c.event_id, rejections_table.c.consumer)
        query = query.order_by(*order).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Rejection(
                event_id=str(row.event_id),
                consumer=row.consumer,
                reason=row.reason,
                rejected_at=as_utc(row.rejected_at),
            )
            for row in rows
        ]
