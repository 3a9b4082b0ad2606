"""What the proxy lets through to the webserver: pure functions, tested without a network.

Measured on the stock webserver (``../shared/reliability.md``): ``GET /graphql?query=mutation...``
launches a run, and so does a cross-origin ``text/plain`` or form POST, which a browser sends
without a CORS preflight. The webserver even parses a body as JSON when ``application/json``
appears anywhere in the Content-Type, so ``text/plain; x=application/json`` (still a "simple"
request for the browser) works too. The rules:

- ``/graphql``: no query by GET or HEAD (405); POST only with the media type
  ``application/json`` exactly (403 otherwise).
- Every state-changing method (POST, PUT, PATCH, DELETE), on any path: a browser's ``Origin``
  must be allowed; a client that sends no Origin must send the custom header
  (``X-Dagster-Request``). A foreign Origin is refused even with the header, and so is a request
  that the browser marks ``Sec-Fetch-Site: cross-site``/``same-site``.
- WebSocket upgrades: the Origin must be allowed (or absent with the custom header).
- OPTIONS is answered by the proxy without CORS headers, so cross-origin preflights fail.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from dp_proxy.settings import ProxySettings

SAFE_METHODS = frozenset({"GET", "HEAD"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GRAPHQL_PATH = "/graphql"


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def normalise_path(path: str) -> str:
    """The path as a router would match it: ``//graphql/``, ``/x/../graphql`` -> ``/graphql``."""
    cleaned = posixpath.normpath("/" + path.lstrip("/")) if path else "/"
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned.lower()


def media_type(content_type: str | None) -> str:
    """The essence of a Content-Type (``text/plain; x=application/json`` -> ``text/plain``)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def origin_allowed(origin: str, host: str | None, settings: ProxySettings) -> bool:
    """Whether a browser ``Origin`` may act: a configured origin, or the proxy's own one."""
    origin = origin.strip().rstrip("/").lower()
    if not origin or origin == "null":
        return False
    if settings.allowed_origins:
        return origin in settings.allowed_origins
    if not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host.lower()


def _cross_site_checks(headers: Mapping[str, str], settings: ProxySettings) -> Refusal | None:
    origin = headers.get("origin")
    if origin is not None:
        if not origin_allowed(origin, headers.get("host"), settings):
            return Refusal(403, f"origin {origin!r} is not allowed")
        return None
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return Refusal(403, "cross-site request without an allowed Origin")
    if not headers.get(settings.csrf_header.lower()):
        return Refusal(403, f"a request without an Origin must send the {settings.csrf_header} header")
    return None


def check_http(
    method: str,
    path: str,
    headers: Mapping[str, str],
    query_keys: set[str],
    settings: ProxySettings,
) -> Refusal | None:
    """Why an authenticated HTTP request must not reach the webserver, or None.

    ``headers`` has lower-case names.
    """
    method = method.upper()
    graphql = normalise_path(path) == GRAPHQL_PATH
    if method in SAFE_METHODS:
        if graphql and ({"query", "operationName", "variables"} & query_keys):
            return Refusal(405, "GraphQL by GET is refused: use POST with application/json")
        return None
    if method not in UNSAFE_METHODS:
        return Refusal(405, f"method {method} is not allowed")
    refusal = _cross_site_checks(headers, settings)
    if refusal:
        return refusal
    if graphql and media_type(headers.get("content-type")) != "application/json":
        return Refusal(403, "GraphQL requests must be POST with Content-Type: application/json")
    return None


def check_websocket(headers: Mapping[str, str], settings: ProxySettings) -> Refusal | None:
    """Why an authenticated WebSocket upgrade must be refused, or None."""
    return _cross_site_checks(headers, settings)
