"""Choose the bus adapter from a URL, so deployments differ only in ``DP_EVENTS_URL``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from dp_sensors.events.base import EventBus

REDIS_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_STREAM = "dp:events"


def split_stream(url: str, default: str = DEFAULT_STREAM) -> tuple[str, str]:
    """Take an optional ``?stream=NAME`` off a Redis URL (redis-py would refuse the unknown arg)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    stream = next((value for key, value in query if key == "stream"), default)
    rest = urlencode([(key, value) for key, value in query if key != "stream"])
    return urlunsplit(parts._replace(query=rest)), stream or default


def default_events_url() -> str:
    """``DP_EVENTS_URL``, else the flow store's database, from the settings in force when called.

    For the event bus resource (Dagster calls it in the run) and ``dp events`` (a command that
    starts here); services that read their settings at start use ``events_bus_url()`` on them.
    """
    from dp_settings import current

    return current().events_bus_url()


def is_redis_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in REDIS_SCHEMES


def event_bus_from_url(url: str, *, stream: str | None = None) -> EventBus:
    """``redis://host:6379/0[?stream=dp:events]`` gives the Redis Streams bus; any other URL is a
    SQLAlchemy URL of the table bus. Call ``ensure_schema()`` on the result before first use.
    """
    if not url:
        raise ValueError("the event bus URL is empty; set DP_EVENTS_URL or DP_STORE_URL")
    if is_redis_url(url):
        from dp_sensors.events.redis_stream import RedisStreamEventBus

        redis_url, url_stream = split_stream(url)
        return RedisStreamEventBus(redis_url, stream=stream or url_stream)
    from dp_sensors.events.sql import SqlEventBus

    return SqlEventBus(url)
