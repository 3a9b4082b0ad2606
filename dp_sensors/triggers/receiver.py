"""The receiver as the platform serves it: webhooks for flows that listen to them, launches for
every published flow.

``dp_sensors.webhook.create_app`` takes one flow lookup for both routes. Webhooks must only be
accepted for flows whose event trigger reads ``webhook.<flow id>`` (else the event would wait
forever), while idempotent launches make sense for every flow. So two receiver apps are built,
one per lookup, and requests are dispatched by path; both share the bus and the launch ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from dp_sensors.webhook import create_app
from dp_settings import PlatformSettings

LAUNCH_PREFIX = "/flows/"


def receiver_app(
    store: Any,
    bus: Any,
    *,
    ledger: Any = None,
    launcher: Any = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> ASGIApp:
    """The ASGI app of ``dp webhook serve`` over a flow store (see the module docstring)."""
    from dp_sensors.triggers.store_catalog import StoreFlowCatalog

    hooks = create_app(catalog=StoreFlowCatalog(store, webhooks_only=True), bus=bus, environ=environ, **options)
    if ledger is None or launcher is None:
        return hooks
    launches = create_app(
        catalog=StoreFlowCatalog(store, webhooks_only=False), bus=bus, ledger=ledger, launcher=launcher,
        environ=environ, **options,
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        target = launches if scope.get("path", "").startswith(LAUNCH_PREFIX) else hooks
        await target(scope, receive, send)

    return app


def serve_receiver(
    host: str, port: int, *, events_url: str | None, launches_url: str | None, dagster_url: str | None,
    max_body_bytes: int, log_level: str, settings: PlatformSettings | None = None,
) -> None:
    """Run the receiver until interrupted (what ``dp webhook serve`` does), with the
    deployment's ``settings`` (read once at start: store, bus, ledger, tokens)."""
    import uvicorn

    from dp_resources.store import FlowStore
    from dp_sensors.events.factory import event_bus_from_url
    from dp_sensors.launch import GraphQLLauncher
    from dp_sensors.webhook import LaunchLedger
    from dp_settings import load

    settings = settings or load()
    store = FlowStore(settings.store_url())
    store.upgrade()
    bus = event_bus_from_url(events_url or settings.events_bus_url())
    bus.ensure_schema()
    ledger = launcher = None
    if dagster_url:
        ledger = LaunchLedger(launches_url or settings.launch_ledger_url())
        ledger.ensure_schema()
        token = settings.dagster.token
        launcher = GraphQLLauncher(
            dagster_url, location=settings.code_location,
            token=token.get_secret_value() if token else None,
        )
    app = receiver_app(store, bus, ledger=ledger, launcher=launcher, max_body_bytes=max_body_bytes,
                       webhook=settings.webhook)
    from dp_resources.http_server import hardened_server_options

    try:
        uvicorn.run(
            app, host=host, port=port, log_level=log_level, lifespan="off", **hardened_server_options()
        )
    finally:
        bus.close()
        if ledger is not None:
            ledger.close()
