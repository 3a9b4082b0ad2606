"""The event bus as a Redis Stream: ``XADD`` to publish, ``XRANGE`` from an exclusive start to read.

Stream ids (``<ms>-<seq>``) are the event ids; Redis hands them out in order, so a reader that
keeps the last id it saw never misses an entry. There are no consumer groups: sensors keep their
own cursor (in Dagster), which lets any number of them read the same stream and lets a sensor
re-read after a restart without acknowledging anything.

A dedupe key is a ``SET NX`` key holding the id of the first event published with it. The check,
the ``XADD`` and the ``SET`` run in one Lua script, so two publishers racing with one key cannot
both append. Keys of one bus share the stream's name as prefix (not Redis Cluster hash slots:
use a single Redis node or one with all keys in one slot).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis

from dp_sensors.events.base import (
    Event,
    EventBusError,
    EventPage,
    Rejection,
    check_key,
    check_limit,
    event_sort_key,
    normalise_data,
)
from dp_sensors.events.topics import matches_any, validate_patterns, validate_topic

_STREAM_ID = re.compile(r"^\d+-\d+$")
_SCAN_BATCH = 1000
_PIPELINE_BATCH = 1000
#: Claims outlive any sensor backlog and then expire, so the keys do not pile up for ever.
CLAIM_TTL_SECONDS = 7 * 24 * 3600
#: A stream entry as a client with ``decode_responses=True`` returns it: ``(id, {field: text})``.
_Entry = tuple[str, dict[str, str]]

_PUBLISH_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then
  return {existing, 1}
end
local id = redis.call('XADD', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[2], id, 'NX', 'EX', ARGV[1])
else
  redis.call('SET', KEYS[2], id, 'NX')
end
return {id, 0}
"""


class RedisStreamEventBus:
    """Events in one Redis Stream (default ``dp:events``).

    ``maxlen`` trims the stream approximately (``MAXLEN ~``); a consumer whose cursor falls
    behind the trimmed start loses those events, so size it well above a sensor's backlog.
    ``dedupe_ttl`` (seconds) expires dedupe keys; ``None`` keeps them as long as Redis does.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        stream: str = "dp:events",
        *,
        maxlen: int | None = None,
        dedupe_ttl: int | None = None,
        client: redis.Redis | None = None,
    ) -> None:
        if not stream:
            raise ValueError("stream must be a non-empty Redis key name")
        self._url = url
        self._stream = stream
        self._maxlen = maxlen
        self._dedupe_ttl = dedupe_ttl
        self._client = client or redis.Redis.from_url(url, decode_responses=True)
        self._publish_once = self._client.register_script(_PUBLISH_ONCE)

    def __repr__(self) -> str:
        return f"RedisStreamEventBus(stream={self._stream!r})"

    @property
    def stream(self) -> str:
        return self._stream

    def ensure_schema(self) -> None:
        """Nothing to create: a stream comes into being with its first event."""

    def close(self) -> None:
        self._client.close()

    def _dedupe_key(self, key: str) -> str:
        return f"{self._stream}:dedupe:{key}"

    @property
    def _rejections_key(self) -> str:
        return f"{self._stream}:rejections"

    def _xadd_args(self, fields: dict[str, str]) -> list[str]:
        args: list[str] = []
        if self._maxlen is not None:
            args += ["MAXLEN", "~", str(self._maxlen)]
        args.append("*")
        for name, value in fields.items():
            args += [name, value]
        return args

    @staticmethod
    def _fields(topic: str, payload: dict, published_at: datetime, source, dedupe_key) -> dict:
        fields = {
            "topic": topic,
            "data": json.dumps(payload, separators=(",", ":")),
            "published_at": published_at.isoformat(),
        }
        if source is not None:
            fields["source"] = source
        if dedupe_key is not None:
            fields["dedupe_key"] = dedupe_key
        return fields

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
        published_at = datetime.now(UTC)
        fields = self._fields(topic, payload, published_at, source, dedupe_key)
        if dedupe_key is None:
            event_id = self._client.execute_command("XADD", self._stream, *self._xadd_args(fields))
        else:
            ttl = "" if self._dedupe_ttl is None else str(int(self._dedupe_ttl))
            event_id, existed = self._publish_once(
                keys=[self._stream, self._dedupe_key(dedupe_key)],
                args=[ttl, *self._xadd_args(fields)],
            )
            if int(existed):
                original = self.get(event_id)
                if original is None:
                    raise EventBusError(
                        f"dedupe_key {dedupe_key!r} refers to event {event_id} of stream "
                        f"{self._stream!r}, which was trimmed away; raise the stream's maxlen "
                        "or give the dedupe keys a TTL shorter than the stream's history"
                    )
                return original
        return Event(
            id=event_id,
            topic=topic,
            data=payload,
            published_at=published_at,
            source=source,
            dedupe_key=dedupe_key,
        )

    def publish_many(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, source: str | None = None) -> list[Event]:
        check_key(source, "source")
        published_at = datetime.now(UTC)
        prepared = [(validate_topic(topic), normalise_data(topic, data)) for topic, data in items]
        events: list[Event] = []
        for start in range(0, len(prepared), _PIPELINE_BATCH):
            chunk = prepared[start : start + _PIPELINE_BATCH]
            pipe = self._client.pipeline(transaction=False)
            for topic, payload in chunk:
                fields = self._fields(topic, payload, published_at, source, None)
                pipe.execute_command("XADD", self._stream, *self._xadd_args(fields))
            ids = pipe.execute()
            events += [
                Event(id=i, topic=t, data=p, published_at=published_at, source=source)
                for i, (t, p) in zip(ids, chunk, strict=True)
            ]
        return events

    @staticmethod
    def _parse_id(value: str, what: str) -> str:
        if not isinstance(value, str) or not _STREAM_ID.fullmatch(value):
            raise ValueError(
                f"{what} {value!r} is not a Redis stream id ('<ms>-<seq>'); "
                "was it written by another bus, such as the SQL one?"
            )
        return value

    @staticmethod
    def _to_event(entry_id: str, fields: dict[str, str]) -> Event:
        return Event(
            id=entry_id,
            topic=fields["topic"],
            data=json.loads(fields.get("data") or "{}"),
            published_at=datetime.fromisoformat(fields["published_at"]),
            source=fields.get("source"),
            dedupe_key=fields.get("dedupe_key"),
        )

    def read_page(
        self,
        cursor: str | None,
        *,
        patterns: Sequence[str] | None = None,
        limit: int = 1000,
        max_scan: int | None = None,
    ) -> EventPage:
        """Scan on from ``cursor`` until ``limit`` matches, the end, or ``max_scan`` entries."""
        selected = validate_patterns(patterns)
        check_limit(limit)
        start = "-" if cursor is None else "(" + self._parse_id(cursor, "cursor")
        found: list[Event] = []
        last = cursor
        scanned = 0
        batch = limit if selected is None else max(limit, _SCAN_BATCH)
        while True:
            if max_scan is not None:
                batch = min(batch, max_scan - scanned)
                if batch <= 0:
                    return EventPage(events=found, cursor=last, exhausted=False)
            entries = self._range(start, "+", batch)
            for entry_id, fields in entries:
                last = entry_id
                start = "(" + entry_id
                scanned += 1
                if matches_any(selected, fields["topic"]):
                    found.append(self._to_event(entry_id, fields))
                    if len(found) == limit:
                        return EventPage(events=found, cursor=last, exhausted=False)
            if len(entries) < batch:
                return EventPage(events=found, cursor=last, exhausted=True)

    def read_after(
        self, cursor: str | None, *, patterns: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        return self.read_page(cursor, patterns=patterns, limit=limit).events

    def get(self, event_id: str) -> Event | None:
        key = self._parse_id(event_id, "event id")
        entries = self._range(key, key, 1)
        return self._to_event(*entries[0]) if entries else None

    def latest_cursor(self) -> str | None:
        # redis-py annotates for bytes and async clients too; this client decodes (see _range).
        entries = cast(list[_Entry], self._client.xrevrange(self._stream, max="+", min="-", count=1))
        return entries[0][0] if entries else None

    def _range(self, low: str, high: str, count: int) -> list[_Entry]:
        """XRANGE of the stream. The client decodes responses (``decode_responses=True``), which
        redis-py's annotations, written for bytes and async clients too, cannot express."""
        return cast(list[_Entry], self._client.xrange(self._stream, min=low, max=high, count=count))

    def record_rejection(self, event_id: str, consumer: str, reason: str) -> None:
        self._parse_id(event_id, "event id")
        check_key(consumer, "consumer")
        record = {
            "event_id": event_id,
            "consumer": consumer,
            "reason": str(reason),
            "rejected_at": datetime.now(UTC).isoformat(),
        }
        self._client.hsetnx(self._rejections_key, f"{consumer}\n{event_id}", json.dumps(record))

    # --- a consumer group, for the dispatcher (``dp dispatch``); sensors read by cursor ------

    def ensure_group(self, group: str) -> None:
        """Create ``group`` at the stream's end (events from now on); an existing group stays."""
        try:
            self._client.xgroup_create(self._stream, group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(self, group: str, consumer: str, *, pending: bool, count: int, block_ms: int | None) -> list[Event]:
        """``XREADGROUP``: with ``pending``, the entries delivered to ``consumer`` and not yet
        acknowledged (what it held when it was killed); else new entries, waiting ``block_ms``."""
        answer = self._client.xreadgroup(
            group, consumer, {self._stream: "0" if pending else ">"}, count=count, block=None if pending else block_ms
        )
        entries = cast(list[tuple[str, list[_Entry]]], answer or [])
        return [self._to_event(entry_id, fields) for _, items in entries for entry_id, fields in items if fields]

    def ack(self, group: str, event_ids: Sequence[str]) -> None:
        if event_ids:
            self._client.xack(self._stream, group, *event_ids)

    def claim_many(self, event_ids: Sequence[str], consumer: str, owner: str) -> dict[str, str]:
        for event_id in event_ids:
            self._parse_id(event_id, "event id")
        check_key(consumer, "consumer")
        check_key(owner, "owner")
        if not event_ids:
            return {}
        keys = [f"{self._stream}:claim:{consumer}:{event_id}" for event_id in event_ids]
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, owner, nx=True, ex=CLAIM_TTL_SECONDS)
        pipe.mget(keys)
        holders = pipe.execute()[-1]
        return dict(zip(event_ids, holders, strict=True))

    def rejections(
        self, *, consumer: str | None = None, event_id: str | None = None, limit: int = 1000
    ) -> list[Rejection]:
        check_limit(limit)
        if event_id is not None:
            self._parse_id(event_id, "event id")
        records = [Rejection.model_validate(json.loads(value)) for value in self._client.hvals(self._rejections_key)]
        records = [
            r
            for r in records
            if (consumer is None or r.consumer == consumer) and (event_id is None or r.event_id == event_id)
        ]
        records.sort(key=lambda r: (event_sort_key(r.event_id), r.consumer))
        return records[:limit]
