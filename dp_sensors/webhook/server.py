"""Serving the receiver with uvicorn: in the foreground (``dp webhook serve``) or in a thread.

The thread variant binds its own socket first, so port 0 gives a free port that is known before
the first request: tests and end-to-end set-ups use it to run the real server on loopback.
Both use :func:`dp_resources.http_server.hardened_server_options`: a total deadline per request
(headers and body), so a slow client cannot hold a connection open.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

from dp_resources.http_server import DEFAULT_REQUEST_TIMEOUT_SECONDS, hardened_server_options
from dp_sensors.events.factory import event_bus_from_url
from dp_sensors.webhook.app import DEFAULT_MAX_BODY_BYTES, FlowCatalog, ParamsLookup, create_app
from dp_sensors.webhook.launches import Launcher, LaunchLedger
from dp_settings import PlatformSettings, load


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    catalog: FlowCatalog | ParamsLookup,
    launcher: Launcher | None = None,
    events_url: str | None = None,
    launches_url: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    environ: Mapping[str, str] | None = None,
    log_level: str = "info",
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
    settings: PlatformSettings | None = None,
) -> None:
    """Run the receiver until interrupted, with the deployment's ``settings`` (default: read now).

    Events go to ``events_url`` (default: ``DP_EVENTS_URL``, else the flow store); with a
    ``launcher``, idempotent launches are recorded in ``launches_url`` (default:
    ``DP_LAUNCHES_URL``, else the flow store). Tokens come from the variables of ``environ``
    when given, else from ``settings``.
    Binds loopback by default: put it behind the authenticating proxy before exposing it.
    """
    settings = settings or load()
    bus = event_bus_from_url(events_url or settings.events_bus_url())
    bus.ensure_schema()
    ledger = None
    if launcher is not None:
        ledger = LaunchLedger(launches_url or settings.launch_ledger_url())
        ledger.ensure_schema()
    app = create_app(
        catalog=catalog,
        bus=bus,
        ledger=ledger,
        launcher=launcher,
        max_body_bytes=max_body_bytes,
        environ=environ,
        webhook=None if environ is not None else settings.webhook,
    )
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            **hardened_server_options(request_timeout_seconds),
        )
    finally:
        bus.close()
        if ledger is not None:
            ledger.close()


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    startup_timeout: float = 30.0,
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server in a daemon thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            **hardened_server_options(request_timeout_seconds),
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"webhook:{bound_port}", daemon=True)
    thread.start()
    give_up = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > give_up:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the receiver did not start on {host}:{bound_port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
