"""The Dagster resource through which sensors, assets and the CLI reach the event bus."""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource
from pydantic import Field

from dp_sensors.events.base import EventBus
from dp_sensors.events.factory import default_events_url, event_bus_from_url


class EventBusResource(ConfigurableResource):
    """Where events are published and read.

    Leave ``url`` unset to follow the environment: ``DP_EVENTS_URL`` when set (a SQLAlchemy URL
    or ``redis://host:port/db?stream=dp:events``), else the flow store's database, so the
    embedded default needs no configuration at all.
    """

    url: str | None = Field(
        default=None,
        description="Event bus URL; unset: DP_EVENTS_URL, else the flow store URL (DP_STORE_URL).",
    )
    stream: str | None = Field(default=None, description="Redis stream name for redis:// URLs (default 'dp:events').")

    def resolved_url(self) -> str:
        return self.url or default_events_url()

    def get_bus(self) -> EventBus:
        """A new bus with its schema ensured; the caller closes it (or use :meth:`open_bus`)."""
        bus = event_bus_from_url(self.resolved_url(), stream=self.stream)
        bus.ensure_schema()
        return bus

    @contextmanager
    def open_bus(self) -> Iterator[EventBus]:
        bus = self.get_bus()
        try:
            yield bus
        finally:
            bus.close()
