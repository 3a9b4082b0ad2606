"""Serving the proxy: uvicorn with the hardened options every HTTP server of ours uses, TLS when a
certificate is given (``dp proxy``)."""

from __future__ import annotations

import logging

from dp_proxy.app import create_app
from dp_proxy.settings import ProxySettings
from dp_resources.http_server import hardened_server_options


def serve(
    settings: ProxySettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    log_level: str = "info",
) -> None:
    """Run the proxy with uvicorn until it is stopped (TLS when a certificate is given).

    Basic credentials travel in clear over plain HTTP: publish the proxy beyond the machine only
    with ``ssl_certfile``/``ssl_keyfile`` or behind a TLS terminator.
    """
    import uvicorn

    settings = settings or ProxySettings.from_env()
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level=log_level,
        proxy_headers=False,
        lifespan="on",
        **hardened_server_options(settings.request_timeout_seconds),
    )
    logging.getLogger("uvicorn.error").addFilter(_DenialLogFilter())
    uvicorn.Server(config).run()


class _DenialLogFilter(logging.Filter):
    """Drop the spurious error uvicorn's websockets-sansio logs after every WebSocket denial
    response (the client gets the denial right; fixed upstream by uvicorn PR #3138). The proxy
    either accepts, denies or raises, so the message carries no other meaning here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."
