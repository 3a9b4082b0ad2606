"""The event record and the bus contract that every adapter fulfils.

The bus is an append-only log read by cursor, not a queue: a consumer (a sensor) keeps the id of
the last event it handled and asks for what came after. Nothing is acknowledged or removed, so
any number of sensors read the same events independently, and a sensor that restarts simply
reads again from its cursor. Exactly-once runs come from Dagster's run keys (the event id), not
from the bus.

Ids are opaque strings, unique and increasing in the order ``read_after`` returns them. Sort
them with :func:`event_sort_key`, never as plain strings (``"10" < "9"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

MAX_KEY_LENGTH = 255


class EventBusError(RuntimeError):
    """The bus could not do what was asked (bad cursor, lost event, unreachable store)."""


class Event(BaseModel):
    """One published event; immutable once published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Unique, increasing in bus order; the sensor's cursor and run key.")
    topic: str
    data: dict[str, Any] = Field(default_factory=dict)
    published_at: datetime = Field(description="UTC, when the bus accepted the event.")
    source: str | None = Field(default=None, description="Who published it: 'cli', 'webhook', ...")
    dedupe_key: str | None = Field(
        default=None, description="The publisher's key; a second publish with it is a no-op."
    )


class Rejection(BaseModel):
    """A consumer's record that an event could not be used, and why (not a failed run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    consumer: str
    reason: str
    rejected_at: datetime


class EventPage(BaseModel):
    """What one ``read_page`` call saw.

    ``cursor`` is the last event *scanned*, matching or not, so a consumer with narrow patterns
    advances past events it does not care about instead of scanning them again on every tick.
    It is ``None`` only when nothing was scanned and no cursor was given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    events: list[Event]
    cursor: str | None
    exhausted: bool = Field(description="True when the scan reached the end of the log.")


@runtime_checkable
class EventBus(Protocol):
    """The contract shared by :class:`SqlEventBus` and :class:`RedisStreamEventBus`."""

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any],
        *,
        dedupe_key: str | None = None,
        source: str | None = None,
    ) -> Event:
        """Append one event; with a ``dedupe_key`` seen before, return the original instead."""
        ...

    def publish_many(self, items: Sequence[tuple[str, Mapping[str, Any]]], *, source: str | None = None) -> list[Event]:
        """Append many events at once, in order (no dedupe keys): bulk loads and benchmarks."""
        ...

    def read_after(
        self, cursor: str | None, *, patterns: Sequence[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        """Up to ``limit`` events strictly after ``cursor`` (``None``: from the start), in order."""
        ...

    def read_page(self, cursor: str | None, *, patterns: Sequence[str] | None = None, limit: int = 1000) -> EventPage:
        """Like ``read_after``, also returning how far the scan got (see :class:`EventPage`)."""
        ...

    def get(self, event_id: str) -> Event | None:
        """One event by id, ``None`` when there is none."""
        ...

    def latest_cursor(self) -> str | None:
        """The id of the newest event (a new consumer's "from now on"), ``None`` when empty."""
        ...

    def record_rejection(self, event_id: str, consumer: str, reason: str) -> None:
        """Record that ``consumer`` could not use the event; repeating it is a no-op."""
        ...

    def claim_many(self, event_ids: Sequence[str], consumer: str, owner: str) -> dict[str, str]:
        """Claim each event for ``owner`` within ``consumer`` (a sensor's name) unless it is
        claimed already; returns event id -> the owner that holds it (the first to claim).

        How the event sensor and the dispatcher (``dp dispatch``) agree which of them starts an
        event's run: whoever claims first does, the other leaves it.
        """
        ...

    def rejections(
        self, *, consumer: str | None = None, event_id: str | None = None, limit: int = 1000
    ) -> list[Rejection]:
        """Recorded rejections in event order, optionally for one consumer or one event."""
        ...

    def ensure_schema(self) -> None:
        """Create what the adapter needs (tables); safe to repeat, never done at import."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def event_sort_key(event_id: str) -> tuple[int, ...]:
    """Order of ids within one bus: SQL ids are integers, Redis ids ``ms-seq``."""
    try:
        return tuple(int(part) for part in event_id.split("-"))
    except ValueError as exc:
        raise ValueError(f"{event_id!r} is not an event id of this platform") from exc


def normalise_data(topic: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON round trip, so what a reader gets back equals what ``publish`` returned."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"event data for topic {topic!r} must be a JSON object (a mapping), got {type(data).__name__}")
    try:
        return json.loads(json.dumps(dict(data), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"event data for topic {topic!r} is not JSON-serialisable ({exc}); publish plain "
            "strings, numbers, booleans, lists and objects (dates as ISO strings)"
        ) from exc


def check_key(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_KEY_LENGTH:
        raise ValueError(f"{what} must be a non-empty string of at most {MAX_KEY_LENGTH} characters")
    return value


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    return limit
