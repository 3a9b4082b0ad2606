"""How the bus is reached: the Dagster resource, the ``events`` CLI group and ``webhook serve``."""

from __future__ import annotations

import json
from pathlib import Path

import click
import dagster as dg
from click.testing import CliRunner

from dp_sensors.events import EventBusResource, RedisStreamEventBus, SqlEventBus
from dp_sensors.events.cli import events_group


def test_resource_defaults_to_the_flow_store(dp_home: Path, monkeypatch) -> None:
    monkeypatch.delenv("DP_EVENTS_URL", raising=False)
    resource = EventBusResource()
    assert resource.resolved_url() == f"sqlite:///{dp_home / 'store.db'}"
    with resource.open_bus() as bus:
        assert isinstance(bus, SqlEventBus)
        bus.publish("a.b", {"x": 1})
    with resource.open_bus() as bus:
        assert [e.topic for e in bus.read_after(None)] == ["a.b"]


def test_resource_follows_dp_events_url(dp_home: Path, monkeypatch, redis_stream) -> None:
    url, stream = redis_stream
    monkeypatch.setenv("DP_EVENTS_URL", f"{url}?stream={stream}")
    with EventBusResource().open_bus() as bus:
        assert isinstance(bus, RedisStreamEventBus) and bus.stream == stream
    explicit = EventBusResource(url=f"sqlite:///{dp_home / 'other.db'}")
    with explicit.open_bus() as bus:
        assert isinstance(bus, SqlEventBus)


def test_resource_publishes_from_an_asset(dp_home: Path, monkeypatch) -> None:
    monkeypatch.delenv("DP_EVENTS_URL", raising=False)

    @dg.asset
    def announce(events: EventBusResource) -> None:
        with events.open_bus() as bus:
            bus.publish("assets.announce.done", {"ok": True}, source="asset")

    result = dg.materialize([announce], resources={"events": EventBusResource()})
    assert result.success
    with EventBusResource().open_bus() as bus:
        (event,) = bus.read_after(None, patterns=["assets.**"])
    assert event.data == {"ok": True} and event.source == "asset"


def test_events_cli_publish_and_list(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    published = runner.invoke(events_group, ["publish", "orders.created", "--data", '{"n": 1}', "--url", url])
    assert published.exit_code == 0, published.output
    event = json.loads(published.output)
    assert event["topic"] == "orders.created" and event["source"] == "cli"
    again = runner.invoke(
        events_group,
        ["publish", "orders.created", "--data", "{}", "--dedupe-key", "k", "--url", url],
    )
    assert again.exit_code == 0
    listed = runner.invoke(events_group, ["list", "--pattern", "orders.*", "--url", url])
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [event["id"], "2"]
    bad = runner.invoke(events_group, ["publish", "orders.*", "--url", url])
    assert bad.exit_code != 0 and "wildcard" in bad.output
    not_json = runner.invoke(events_group, ["publish", "a.b", "--data", "{x", "--url", url])
    assert not_json.exit_code != 0 and "not valid JSON" in not_json.output


def test_webhook_serve_command_is_mountable() -> None:
    from dp_assets.cli import main as dp
    from dp_assets.cli.triggers import webhook

    group = webhook
    assert isinstance(group, click.Group) and "serve" in group.commands
    result = CliRunner().invoke(dp, ["webhook", "serve", "--help"])
    assert result.exit_code == 0 and "DP_WEBHOOK_TOKEN" in result.output
