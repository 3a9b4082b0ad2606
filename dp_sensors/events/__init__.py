"""The event bus: topics with ``*``/``**`` patterns, and two adapters behind one contract.

The SQL and Redis adapters and the Dagster resource are imported on first use, so importing
this package stays cheap and never needs Redis or Dagster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dp_sensors.events.base import (
    Event,
    EventBus,
    EventBusError,
    EventPage,
    Rejection,
    event_sort_key,
)
from dp_sensors.events.factory import event_bus_from_url
from dp_sensors.events.topics import (
    match_topic,
    matches_any,
    validate_topic,
    validate_topic_pattern,
)

if TYPE_CHECKING:
    from dp_sensors.events.redis_stream import RedisStreamEventBus
    from dp_sensors.events.resource import EventBusResource
    from dp_sensors.events.sql import SqlEventBus

_LAZY = {
    "SqlEventBus": "dp_sensors.events.sql",
    "RedisStreamEventBus": "dp_sensors.events.redis_stream",
    "EventBusResource": "dp_sensors.events.resource",
}

__all__ = [
    "Event",
    "EventBus",
    "EventBusError",
    "EventBusResource",
    "EventPage",
    "RedisStreamEventBus",
    "Rejection",
    "SqlEventBus",
    "event_bus_from_url",
    "event_sort_key",
    "match_topic",
    "matches_any",
    "validate_topic",
    "validate_topic_pattern",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dp_sensors.events' has no attribute {name!r}")
