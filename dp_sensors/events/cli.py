"""``dp events ...``: publish and inspect events from the shell (the platform CLI mounts it)."""

from __future__ import annotations

import json

import click

from dp_sensors.events.base import EventBus
from dp_sensors.events.factory import default_events_url, event_bus_from_url

_URL_OPTION = click.option(
    "--url",
    default=None,
    help="Event bus URL [env DP_EVENTS_URL; default: the flow store].",
)


def _open(url: str | None) -> EventBus:
    bus = event_bus_from_url(url or default_events_url())
    bus.ensure_schema()
    return bus


@click.group("events")
def events_group() -> None:
    """Publish events and look at the event bus."""


@events_group.command("publish")
@click.argument("topic")
@click.option("--data", "data_json", default="{}", show_default=True, help="A JSON object.")
@click.option("--dedupe-key", default=None, help="Publishing again with this key is a no-op.")
@click.option("--source", default="cli", show_default=True)
@_URL_OPTION
def publish_command(topic: str, data_json: str, dedupe_key: str | None, source: str, url: str | None) -> None:
    """Publish one event on TOPIC and print it as JSON."""
    try:
        data = json.loads(data_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    bus = _open(url)
    try:
        event = bus.publish(topic, data, dedupe_key=dedupe_key, source=source)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bus.close()
    click.echo(event.model_dump_json())


@events_group.command("list")
@click.option("--after", default=None, help="Only events after this id.")
@click.option("--pattern", "patterns", multiple=True, help="Topic pattern ('*', '**'); repeatable.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@_URL_OPTION
def list_command(after: str | None, patterns: tuple[str, ...], limit: int, url: str | None) -> None:
    """Print events in order, one JSON object a line."""
    bus = _open(url)
    try:
        events = bus.read_after(after, patterns=list(patterns) or None, limit=limit)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bus.close()
    for event in events:
        click.echo(event.model_dump_json())


@events_group.command("rejections")
@click.option("--consumer", default=None, help="Only this consumer's (a sensor name).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@_URL_OPTION
def rejections_command(consumer: str | None, limit: int, url: str | None) -> None:
    """Print events that consumers could not use, with the reason."""
    bus = _open(url)
    try:
        for rejection in bus.rejections(consumer=consumer, limit=limit):
            click.echo(rejection.model_dump_json())
    finally:
        bus.close()
