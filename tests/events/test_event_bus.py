"""The event bus contract, run unchanged on SQLite, PostgreSQL and Redis Streams.

E1's building block lives here: one dedupe key gives one event, however often (and however
concurrently) it is published. The sensor side of E1 (run keys, ticks, restarts) is tested with
the sensors.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from dp_sensors.events import (
    Event,
    EventBus,
    Rejection,
    SqlEventBus,
    event_bus_from_url,
    event_sort_key,
)
from dp_sensors.events.factory import split_stream
from dp_sensors.events.redis_stream import RedisStreamEventBus


def ids(events: list[Event]) -> list[str]:
    return [event.id for event in events]


def test_empty_bus(bus: EventBus) -> None:
    assert bus.latest_cursor() is None
    assert bus.read_after(None) == []
    assert bus.rejections() == []


def test_publish_returns_what_readers_get(bus: EventBus) -> None:
    data = {"n": 1, "nested": {"list": [1, "two", None, True]}, "text": "héllo ✓"}
    event = bus.publish("orders.created", data, source="test")
    assert event.topic == "orders.created"
    assert event.data == data
    assert event.source == "test"
    assert event.published_at.tzinfo is not None
    assert abs((datetime.now(UTC) - event.published_at).total_seconds()) < 3600
    assert bus.read_after(None) == [event]
    assert bus.get(event.id) == event
    assert bus.latest_cursor() == event.id


def test_ids_increase_and_read_after_is_exclusive(bus: EventBus) -> None:
    events = [bus.publish("t.x", {"i": i}) for i in range(12)]
    keys = [event_sort_key(e.id) for e in events]
    assert keys == sorted(keys) and len(set(keys)) == 12
    assert bus.read_after(None) == events
    assert bus.read_after(events[0].id) == events[1:]
    assert bus.read_after(events[5].id) == events[6:]
    assert bus.read_after(events[-1].id) == []
    assert bus.latest_cursor() == events[-1].id


def test_paging_with_limit(bus: EventBus) -> None:
    events = [bus.publish("page.x", {"i": i}) for i in range(25)]
    pages, cursor = [], None
    while page := bus.read_after(cursor, limit=10):
        pages.append(page)
        cursor = page[-1].id
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e for p in pages for e in p] == events


def test_patterns_select_topics(bus: EventBus) -> None:
    published = [
        bus.publish(topic, {}) for topic in ["orders.created", "orders.eu.created", "users.created", "orders", "x.y.z"]
    ]
    by_topic = {e.topic: e for e in published}
    assert [e.topic for e in bus.read_after(None, patterns=["orders.*"])] == ["orders.created"]
    assert [e.topic for e in bus.read_after(None, patterns=["orders.**"])] == [
        "orders.created",
        "orders.eu.created",
        "orders",
    ]
    assert [e.topic for e in bus.read_after(None, patterns=["*.created", "x.**"])] == [
        "orders.created",
        "users.created",
        "x.y.z",
    ]
    assert bus.read_after(None, patterns=["**"]) == published
    assert bus.read_after(None, patterns=[]) == []
    assert bus.read_after(by_topic["users.created"].id, patterns=["*.created"]) == []


def test_read_page_cursor_moves_past_events_that_do_not_match(bus: EventBus) -> None:
    """A sensor with a narrow pattern must not rescan the same unrelated events every tick."""
    noise = bus.publish_many([("noise.x", {"i": i}) for i in range(30)])
    page = bus.read_page(None, patterns=["wanted.*"], limit=5)
    assert page.events == [] and page.exhausted and page.cursor == noise[-1].id
    wanted = bus.publish("wanted.one", {})
    bus.publish("noise.x", {})
    page = bus.read_page(page.cursor, patterns=["wanted.*"], limit=5)
    assert page.events == [wanted]
    capped = bus.read_page(None, patterns=["wanted.*"], limit=5, max_scan=10)
    assert capped.events == [] and not capped.exhausted and capped.cursor == noise[9].id


def test_dedupe_key_gives_one_event_E1(bus: EventBus) -> None:
    """E1 building block: the same delivery published twice with one key is one event."""
    first = bus.publish("webhook.sales", {"day": "2024-01-01"}, dedupe_key="delivery-1")
    again = bus.publish("webhook.sales", {"day": "2024-01-01"}, dedupe_key="delivery-1")
    changed = bus.publish("webhook.sales", {"day": "1999-12-31"}, dedupe_key="delivery-1")
    other = bus.publish("webhook.sales", {"day": "2024-01-01"}, dedupe_key="delivery-2")
    assert again == first and changed == first
    assert first.dedupe_key == "delivery-1"
    assert bus.read_after(None) == [first, other]


def test_concurrent_publishes_with_one_dedupe_key_E1(bus: EventBus) -> None:
    """E1 building block under a race: 12 publishers, one key, one event, one id for all."""
    barrier = threading.Barrier(12)
    results: list[Event] = []
    errors: list[BaseException] = []

    def publish() -> None:
        try:
            barrier.wait()
            results.append(bus.publish("race.x", {"v": 1}, dedupe_key="same"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({event.id for event in results}) == 1 and len(results) == 12
    assert len(bus.read_after(None)) == 1


def test_a_tailing_reader_never_misses_an_event(bus: EventBus) -> None:
    """Concurrent publishers and a reader that keeps only its cursor: every event is read once.

    On PostgreSQL this fails without the publishers' advisory lock, when a lower id commits
    after a higher one the reader has already moved past.
    """
    writers, per_writer = 4, 60
    done = threading.Event()
    seen: list[Event] = []
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for i in range(per_writer):
                bus.publish(f"w{w}.x", {"w": w, "i": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def read() -> None:
        cursor = None
        try:
            while True:
                finished = done.is_set()
                page = bus.read_after(cursor, limit=50)
                seen.extend(page)
                if page:
                    cursor = page[-1].id
                elif finished:
                    return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    reader = threading.Thread(target=read)
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert errors == []
    everything = bus.read_after(None, limit=10_000)
    assert len(everything) == writers * per_writer
    assert ids(seen) == ids(everything)
    for w in range(writers):
        assert [e.data["i"] for e in everything if e.data["w"] == w] == list(range(per_writer))


def test_rejections_are_recorded_once(bus: EventBus) -> None:
    first = bus.publish("orders.created", {"n": "not a number"})
    second = bus.publish("orders.created", {"n": 2})
    bus.record_rejection(second.id, "orders_sensor", "n: later")
    bus.record_rejection(first.id, "orders_sensor", "n: Input should be a valid integer")
    bus.record_rejection(first.id, "orders_sensor", "repeated tick")
    bus.record_rejection(first.id, "audit_sensor", "other consumer")
    everything = bus.rejections()
    assert [(r.event_id, r.consumer) for r in everything] == [
        (first.id, "audit_sensor"),
        (first.id, "orders_sensor"),
        (second.id, "orders_sensor"),
    ]
    mine = bus.rejections(consumer="orders_sensor")
    assert [r.reason for r in mine] == ["n: Input should be a valid integer", "n: later"]
    assert all(isinstance(r, Rejection) and r.rejected_at.tzinfo for r in mine)
    assert [r.consumer for r in bus.rejections(event_id=first.id)] == [
        "audit_sensor",
        "orders_sensor",
    ]
    assert len(bus.rejections(limit=1)) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.publish("a.*", {}), "wildcard"),
        (lambda b: b.publish("a..b", {}), "empty segment"),
        (lambda b: b.publish("a.b", {"when": datetime.now(UTC)}), "not JSON-serialisable"),
        (lambda b: b.publish("a.b", {"x": float("nan")}), "not JSON-serialisable"),
        (lambda b: b.publish("a.b", ["not", "a", "mapping"]), "must be a JSON object"),
        (lambda b: b.publish("a.b", {}, dedupe_key=""), "dedupe_key"),
        (lambda b: b.read_after("not-a-cursor"), "another bus"),
        (lambda b: b.read_after(None, patterns=["a*"]), "whole segment"),
        (lambda b: b.read_after(None, patterns="a.*"), "not a single string"),
        (lambda b: b.read_after(None, limit=0), "positive integer"),
        (lambda b: b.get("zzz"), "another bus"),
    ],
    ids=[
        "wildcard-topic",
        "bad-topic",
        "datetime-data",
        "nan-data",
        "list-data",
        "empty-key",
        "bad-cursor",
        "bad-pattern",
        "pattern-string",
        "zero-limit",
        "bad-id",
    ],
)
def test_bad_input_is_refused_with_a_reason(bus: EventBus, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(bus)
    assert bus.read_after(None) == []


def test_ten_thousand_events_read_in_pages(bus: EventBus) -> None:
    """10k events: paging by cursor returns all of them in order, and patterns page too."""
    published = bus.publish_many(
        [(f"load.{'even' if i % 2 == 0 else 'odd'}", {"i": i}) for i in range(10_000)],
        source="bulk",
    )
    assert len(published) == 10_000
    cursor, seen = None, []
    while page := bus.read_after(cursor, limit=1000):
        seen.extend(e.data["i"] for e in page)
        cursor = page[-1].id
    assert seen == list(range(10_000))
    cursor, odd = None, []
    while page := bus.read_after(cursor, patterns=["load.odd"], limit=700):
        odd.extend(e.data["i"] for e in page)
        cursor = page[-1].id
    assert odd == list(range(1, 10_000, 2))
    assert bus.latest_cursor() == published[-1].id
    assert bus.read_after(published[-2].id) == [published[-1]]


def test_sqlite_read_after_uses_the_primary_key(sqlite_url: str) -> None:
    """Read-after must stay cheap on a large log: the query is an index range, not a scan."""
    bus = SqlEventBus(sqlite_url)
    bus.ensure_schema()
    bus.publish_many([("a.b", {})] * 100)
    with bus.engine.connect() as conn:
        plan = conn.execute(
            sa.text("EXPLAIN QUERY PLAN SELECT * FROM dp_events WHERE id > 50 ORDER BY id LIMIT 10")
        ).all()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "USING INTEGER PRIMARY KEY" in detail and "TEMP B-TREE" not in detail
    bus.close()


def test_ensure_schema_is_repeatable(sqlite_url: str) -> None:
    bus = SqlEventBus(sqlite_url)
    bus.ensure_schema()
    event = bus.publish("a.b", {"x": 1})
    bus.ensure_schema()
    assert bus.read_after(None) == [event]
    bus.close()


def test_no_tables_are_created_before_ensure_schema(sqlite_url: str) -> None:
    bus = SqlEventBus(sqlite_url)
    assert sa.inspect(bus.engine).get_table_names() == []
    bus.close()


@pytest.mark.parametrize(
    ("url", "adapter"),
    [
        ("sqlite:///x.db", SqlEventBus),
        ("postgresql+psycopg2://u@h/db", SqlEventBus),
        ("redis://127.0.0.1:6379/0", RedisStreamEventBus),
        ("redis://127.0.0.1:6379/0?stream=dp:other", RedisStreamEventBus),
    ],
    ids=["sqlite", "postgres", "redis", "redis-stream"],
)
def test_event_bus_from_url(url: str, adapter: type) -> None:
    bus = event_bus_from_url(url)
    assert isinstance(bus, adapter)
    if adapter is RedisStreamEventBus:
        assert bus.stream == split_stream(url)[1]
    bus.close()


def test_split_stream() -> None:
    assert split_stream("redis://h:1/0?stream=a:b&ssl_cert_reqs=none") == (
        "redis://h:1/0?ssl_cert_reqs=none",
        "a:b",
    )
    assert split_stream("redis://h:1/0") == ("redis://h:1/0", "dp:events")


def test_the_first_claim_of_an_event_holds(bus: EventBus) -> None:
    """How the sensor and ``dp dispatch`` agree who starts an event's run: per consumer (a sensor
    name) the first owner to claim an event keeps it, also when both claim at the same moment."""
    first, second, third = (bus.publish("orders.created", {"n": n}) for n in range(3))
    assert bus.claim_many([first.id, second.id], "a_event_sensor", "dispatcher") == {
        first.id: "dispatcher",
        second.id: "dispatcher",
    }
    assert bus.claim_many([second.id, third.id], "a_event_sensor", "sensor") == {
        second.id: "dispatcher",
        third.id: "sensor",
    }
    assert bus.claim_many([first.id], "b_event_sensor", "sensor") == {first.id: "sensor"}
    assert bus.claim_many([], "a_event_sensor", "sensor") == {}

    racing = bus.publish("orders.created", {"n": 4})
    holders: list[str] = []
    barrier = threading.Barrier(8)

    def claim(owner: str) -> None:
        barrier.wait()
        holders.append(bus.claim_many([racing.id], "a_event_sensor", owner)[racing.id])

    threads = [threading.Thread(target=claim, args=(f"owner{i % 2}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(holders)) == 1
