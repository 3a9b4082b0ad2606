"""A launch or invoke through the receiver may name a partition (`"partition": "KEY"` in the body):
the launcher gets it as Dagster's partition tag, a key that is not one partition key is refused
with 422 before anything launches, and the partition is part of what an Idempotency-Key pins.
Against Dagster itself (the flow's keys): tests/partitions/test_backfills.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_sensors.events.sql import SqlEventBus
from dp_sensors.launch import unknown_partition
from dp_sensors.webhook import LaunchLedger, create_app
from dp_sensors.webhook.launches import MAX_PARTITION_KEY, PARTITION_TAG, LaunchRejected
from tests.events.test_idempotent_launch import AUTH, TOKEN, RecordingLauncher, ReportParams
from tests.fuzzing import fuzz_settings


@pytest.fixture
def receiver(sqlite_url: str, start_server: Callable[..., str]) -> Iterator[Callable[..., httpx.Client]]:
    ledger = LaunchLedger(sqlite_url)
    ledger.ensure_schema()
    bus = SqlEventBus(sqlite_url)
    bus.ensure_schema()
    clients: list[httpx.Client] = []

    def start(launcher: RecordingLauncher) -> httpx.Client:
        app = create_app(
            catalog={"report": ReportParams}.get,
            bus=bus,
            ledger=ledger,
            launcher=launcher,
            environ={"DP_WEBHOOK_TOKEN": TOKEN},
        )
        clients.append(httpx.Client(base_url=start_server(app), timeout=60))
        return clients[-1]

    yield start
    for client in clients:
        client.close()
    bus.close()
    ledger.close()


def launch(client: httpx.Client, body: dict, key: str | None = None) -> httpx.Response:
    headers = {**AUTH, "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post("/flows/report/runs", json=body, headers=headers)


def test_a_named_partition_reaches_the_launcher_as_dagsters_partition_tag(receiver):
    launcher = RecordingLauncher()
    client = receiver(launcher)
    answered = launch(client, {"params": {"day": "d"}, "partition": "2026-01-09"})
    assert answered.status_code == 201, answered.text
    ((flow, params, tags),) = launcher.calls
    assert (flow, params, tags[PARTITION_TAG], tags["dp/trigger"]) == ("report", {"day": "d"}, "2026-01-09", "api")
    assert PARTITION_TAG not in launch_and_tags(client, launcher, {"params": {"day": "d"}})


def launch_and_tags(client: httpx.Client, launcher: RecordingLauncher, body: dict) -> dict:
    assert launch(client, body).status_code == 201
    return launcher.calls[-1][2]


def test_the_partition_is_part_of_what_an_idempotency_key_pins(receiver):
    launcher = RecordingLauncher()
    client = receiver(launcher)
    first = launch(client, {"params": {"day": "d"}, "partition": "a"}, key="k1")
    again = launch(client, {"params": {"day": "d"}, "partition": "a"}, key="k1")
    other = launch(client, {"params": {"day": "d"}, "partition": "b"}, key="k1")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["run_id"] == first.json()["run_id"] and len(launcher.calls) == 1


def test_a_partition_dagster_refuses_is_a_422_and_frees_the_key(receiver):
    launcher = RecordingLauncher(
        failures=[LaunchRejected("flow 'report' has no partition 'x'; its partitions run from a to b")]
    )
    client = receiver(launcher)
    refused = launch(client, {"params": {"day": "d"}, "partition": "x"}, key="k2")
    assert refused.status_code == 422
    assert "has no partition 'x'; its partitions run from a to b" in refused.json()["detail"]
    assert launch(client, {"params": {"day": "d"}, "partition": "a"}, key="k2").status_code == 201


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def test_any_partition_value_is_launched_as_is_or_refused_before_launching(receiver):
    """Invariant: a string of 1..255 characters without control characters reaches the launcher
    unchanged as the partition tag (201); any other value is a 4xx naming the problem and nothing
    is launched; never 5xx."""
    launcher = RecordingLauncher()
    client = receiver(launcher)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(partition=JSON)
    def check(partition: object) -> None:
        launched = len(launcher.calls)
        answered = launch(client, {"params": {"day": "d"}, "partition": partition})
        acceptable = (
            isinstance(partition, str)
            and 0 < len(partition) <= MAX_PARTITION_KEY
            and not any(ch < " " or ch == "\x7f" for ch in partition)
        )
        if partition is None:
            assert answered.status_code == 201 and PARTITION_TAG not in launcher.calls[-1][2]
        elif acceptable:
            assert answered.status_code == 201, answered.text
            assert launcher.calls[-1][2][PARTITION_TAG] == partition
        else:
            # 422 for a value that is no partition key; 400 for a body the receiver never reads
            # as JSON (a NUL character anywhere in it, bodies.py)
            assert answered.status_code in (400, 422), answered.text
            assert len(launcher.calls) == launched

    check()


@fuzz_settings(200)
# keys as the spec allows them (no control characters); the asked partition any text at all
@given(
    keys=st.lists(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12), max_size=6, unique=True),
    partition=st.text(max_size=5000),
)
def test_any_partition_text_is_one_of_the_keys_or_one_bounded_line_naming_the_flow(keys, partition):
    """`dp launch --partition`, the receiver and `dp run --partition` ask the same question: a
    listed key runs; any other text is refused naming the flow, in one line of bounded length
    (the key is echoed at most 40 characters), whatever the text holds."""
    problem = unknown_partition("report", keys, partition)
    if partition in keys:
        assert problem is None
    else:
        assert problem is not None and problem.startswith("flow 'report' has no partition ")
        assert "\n" not in problem and len(problem) <= 200
