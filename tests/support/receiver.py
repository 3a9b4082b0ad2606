"""The receiver as ``dp webhook serve`` builds it, over a test platform's store and webserver."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from dp_assets.receiver import platform_invoke_backend, receiver_app
from dp_resources.store import FlowStore
from dp_sensors.events.sql import SqlEventBus
from dp_sensors.launch import GraphQLLauncher
from dp_sensors.webhook import LaunchLedger, serve_in_thread
from dp_settings.model import PlatformSettings


@contextmanager
def platform_receiver(platform: Any, settings: PlatformSettings) -> Iterator[str]:
    """Serve the receiver on loopback (bus and launch ledger in SQLite files beside the
    platform, launches through its webserver, service tokens of its store); its base URL."""
    store = FlowStore(platform.store_url)
    store.upgrade()
    with ExitStack() as stack:
        bus = SqlEventBus(f"sqlite:///{platform.root / 'events.db'}")
        bus.ensure_schema()
        stack.callback(bus.close)
        ledger = LaunchLedger(f"sqlite:///{platform.root / 'launches.db'}")
        ledger.ensure_schema()
        stack.callback(ledger.close)
        backend = platform_invoke_backend(store, platform.graphql_url, settings)
        stack.callback(backend.client.close)
        app = receiver_app(
            store,
            bus,
            ledger=ledger,
            launcher=GraphQLLauncher(platform.graphql_url),
            invoke_backend=backend,
            webhook=settings.webhook,
            invoke_max_wait_seconds=settings.invoke_wait_cap(),
        )
        yield stack.enter_context(serve_in_thread(app))
