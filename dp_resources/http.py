"""Outbound HTTP for nodes, guarded against SSRF and response bombs (reliability V4, V5).

Every hop of a request is checked before connecting: the scheme must be http or https, the host
name is resolved once, every address it resolves to must be allowed, and the connection goes to
that checked address (the URL's host is replaced by the IP, with the ``Host`` header and TLS SNI
kept), so a DNS answer that changes between check and connect cannot redirect it. Redirects are
followed by hand, each re-checked the same way, at most ``max_redirects`` (the resource's, or a
smaller one per request; 0 answers with the 30x itself). A redirect that leaves the origin (scheme,
host or port) drops the credentials: ``Authorization``, ``Proxy-Authorization``, ``Cookie``, the
usual API-key headers and every header the caller marks as holding a secret — as browsers, httpx
and requests do — and a redirect from https to http is never followed. Addresses that are not globally routable
(loopback, private, link-local such as the cloud metadata address, multicast, reserved) are
refused unless the deployment allows them (``allow_private`` or ``allowed_networks``).

A response body is read in chunks up to ``max_bytes`` (after decompression, so a gzip bomb stops
at the cap) and the whole exchange, redirects included, must end within ``timeout_seconds``.
"""

from __future__ import annotations

import email.utils
import ipaddress
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from dp_resources import netguard

# Which headers are credentials is the secrets policy's: one place decides what stays on an origin.
from dp_resources.secrets import CREDENTIAL_HEADERS, without_credentials  # noqa: F401 - re-exported

REDIRECTS = {301, 302, 303, 307, 308}
RETRYABLE = {429, 500, 502, 503, 504}
DEFAULT_PORTS = {"http": 80, "https": 443}
# Metadata services that also answer on addresses the generic checks treat as global or private.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}

#: The refusals a deployment may lift with allowed_networks (unlike metadata and link-local ones).
LOOPBACK = "a loopback address"
PRIVATE = "a private or internal address"


def _how_to_allow(address: str, reason: str, variable: str) -> str:
    """The setting (``variable``) that lets this client reach a loopback or private address,
    written for this one (the code location and `dp run` read it when they start); none for the
    addresses that should stay closed (metadata, link-local), whose refusal names only the
    resource's fields."""
    if reason not in (LOOPBACK, PRIVATE):
        return ""
    prefix = 128 if ":" in address else 32
    return f"{variable}={address}/{prefix} allows it; or "


#: The resource whose fields the variable of ``HttpResource.opened_by`` fills.
_OPENED_BY = {"DP_HTTP_ALLOWED_NETWORKS": "HttpResource", "DP_LLM_ALLOWED_NETWORKS": "LlmResource"}


class RequestRefused(ValueError):
    """The URL or an address it resolves to is not allowed by the deployment."""


class ResponseTooLarge(IOError):
    pass


class RequestTimedOut(TimeoutError):
    pass


class HttpStatusError(RuntimeError):
    def __init__(self, response: HttpResponse, message: str):
        super().__init__(message)
        self.response = response


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def _plain(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4 address hidden in an IPv6 form (mapped, NAT64, 6to4) as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def origin(url: Any) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of an ``httpx.URL`` or URL text, default ports filled in."""
    import httpx

    url = httpx.URL(str(url)) if not isinstance(url, httpx.URL) else url
    return url.scheme, (url.host or "").lower(), url.port or DEFAULT_PORTS.get(url.scheme)


def _shown(url: Any) -> str:
    """A URL for a message: no userinfo, query or fragment (they may carry a secret)."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


class HttpResource(dg.ConfigurableResource):
    """An httpx client that refuses internal addresses and bounds what a response may cost."""

    allow_private: bool = Field(
        default=False,
        description="Allow private and loopback addresses (never link-local/metadata ones).",
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDR networks allowed even if not public, e.g. ['10.1.2.0/24'].",
    )
    max_bytes: int = Field(default=50 * 1024 * 1024, gt=0, description="Largest response body read.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Total time of one request, redirects included.")
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    max_redirects: int = Field(
        default=5,
        ge=0,
        description="Most redirects one request follows (a node may ask for fewer); 0: the 30x response is the answer.",
    )
    verify_tls: bool = True
    user_agent: str = "dp-platform"
    opened_by: str = Field(
        default="DP_HTTP_ALLOWED_NETWORKS",
        description="The variable (and resource) a refusal names as the way to open an address: "
        "the LLM endpoint's client names DP_LLM_ALLOWED_NETWORKS and LlmResource.",
    )

    # --- address checks ------------------------------------------------------------------

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be reached, or ``None`` when it may."""
        ip = _plain(ipaddress.ip_address(address))
        # Before allowed_networks: a network listed for private servers (100.64.0.0/10, fd00::/8,
        # 0.0.0.0/0) may hold a metadata address; those stay closed whatever the deployment lists.
        if ip in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if ip.is_link_local:
            return "a link-local address"
        for network in self.allowed_networks:
            if ip in ipaddress.ip_network(network, strict=False):
                return None
        if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
            return "not a unicast address"
        if ip.is_global:
            return None
        if self.allow_private and (ip.is_private or ip.is_loopback):
            return None
        return LOOPBACK if ip.is_loopback else PRIVATE

    def checked_address(self, host: str, port: int) -> str:
        """Resolve ``host`` once; every answer must be allowed; return the one to connect to."""
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            raise RequestRefused(f"cannot resolve host '{host}': {exc.strerror}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))  # an IP address: always text
        for address in addresses:
            reason = self.refusal(address)
            if reason:
                raise RequestRefused(
                    f"host '{host}' resolves to {address}, {reason}; the deployment does not allow "
                    f"it ({_how_to_allow(address, reason, self.opened_by)}"
                    f"{_OPENED_BY.get(self.opened_by, 'HttpResource')} allowed_networks / allow_private)"
                )
        if not addresses:
            raise RequestRefused(f"host '{host}' has no address")
        return addresses[0]

    # --- requests ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        max_redirects: int | None = None,
        sensitive_headers: Collection[str] = (),
        sensitive_body: bool = False,
    ) -> HttpResponse:
        """Send one request, following redirects by hand; the body is read whole up to the cap.

        ``max_redirects`` lowers the resource's limit for this request (0: answer with the 30x).
        ``sensitive_headers`` names headers holding a secret: like ``Authorization``, they are
        not sent again once a redirect has left the first URL's origin. ``sensitive_body`` says
        the body holds one: a redirect to another origin that would send the body again fails.
        """
        import httpx

        cap = max_bytes or self.max_bytes
        deadline = time.monotonic() + self.timeout_seconds
        limit = self.max_redirects if max_redirects is None else min(max_redirects, self.max_redirects)
        target = httpx.URL(url, params=params) if params else httpx.URL(url)
        method = method.upper()
        send_headers = dict(headers or {})
        with httpx.Client(follow_redirects=False, verify=self.verify_tls, trust_env=False) as client:
            for hop in range(limit + 1):
                response = self._hop(client, method, target, json, content, send_headers, cap, deadline)
                location = response.headers.get("location")
                if response.status_code not in REDIRECTS or not location or limit == 0:
                    return response
                if hop == limit:
                    break
                following = target.join(location)
                if target.scheme == "https" and following.scheme == "http":
                    raise RequestRefused(
                        f"{_shown(target)} redirected to {_shown(following)}: a redirect from "
                        "https to http is never followed"
                    )
                drops_body = response.status_code == 303 or (response.status_code in (301, 302) and method == "POST")
                keeps_body = not drops_body and (json is not None or content is not None)
                if origin(following) != origin(target):  # credentials stay with the origin they were meant for
                    if keeps_body and sensitive_body:
                        raise RequestRefused(
                            f"{_shown(target)} redirected to another origin ({_shown(following)}) "
                            f"with {response.status_code}, which would send the body holding a "
                            "secret there; not followed"
                        )
                    send_headers = without_credentials(send_headers, sensitive_headers)
                    client.cookies.clear()
                target = following
                if drops_body:
                    method, json, content = "GET", None, None
            raise RequestRefused(f"more than {limit} redirects from {_shown(httpx.URL(url))} (max_redirects)")

    def _hop(
        self,
        client: Any,
        method: str,
        target: Any,
        json: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        cap: int,
        deadline: float,
    ) -> HttpResponse:
        import httpx

        if target.scheme not in ("http", "https"):
            raise RequestRefused(f"scheme '{target.scheme}' is not allowed; use http or https")
        host = target.host
        if not host:
            raise RequestRefused(f"URL '{target}' has no host")
        port = target.port or (443 if target.scheme == "https" else 80)
        address = self.checked_address(host, port)
        pinned = target.copy_with(host=address)
        send_headers = {"User-Agent": self.user_agent, **(headers or {})}
        send_headers["Host"] = host if target.port is None else f"{host}:{target.port}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimedOut(f"request to {host} took longer than {self.timeout_seconds}s")
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            extensions["sni_hostname"] = host
        timeout = httpx.Timeout(remaining, connect=min(remaining, self.connect_timeout_seconds))
        request = client.build_request(
            method, pinned, json=json, content=content, headers=send_headers, timeout=timeout, extensions=extensions
        )
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"request to {host} timed out ({type(exc).__name__})") from None
        try:
            try:
                body = netguard.read_body(response, cap, deadline, host, self.timeout_seconds)
            except netguard.BodyTooLarge as exc:
                raise ResponseTooLarge(str(exc)) from None
            except netguard.BodyTimedOut as exc:
                raise RequestTimedOut(str(exc)) from None
        except httpx.TimeoutException as exc:
            raise RequestTimedOut(f"response from {host} timed out ({type(exc).__name__})") from None
        except httpx.DecodingError as exc:
            raise ResponseTooLarge(f"response from {host} could not be decoded: {exc}") from None
        finally:
            response.close()
        return HttpResponse(response.status_code, dict(response.headers), body, str(target))


def retry_after_seconds(response: HttpResponse, default: float) -> float:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), else ``default``."""
    value = (response.headers.get("retry-after") or "").strip()
    if not value:
        return default
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def send_with_retries(
    http: HttpResource,
    method: str,
    url: str,
    *,
    retries: int = 3,
    backoff_seconds: float = 0.5,
    max_retry_after: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> HttpResponse:
    """``http.request`` retried on 429/5xx (honouring ``Retry-After``) and on timeouts/transport errors.

    The same headers go with every attempt, so an idempotency key stays the same (E6). Refusals
    and oversized responses are not retried. A final 4xx/5xx raises ``HttpStatusError``.
    """
    import httpx

    attempt = 0
    while True:
        try:
            response = http.request(method, url, **kwargs)
        except (RequestTimedOut, httpx.TransportError):
            if attempt >= retries:
                raise
            delay = backoff_seconds * 2**attempt
        else:
            if response.ok or response.status_code in REDIRECTS:
                return response
            if response.status_code not in RETRYABLE or attempt >= retries:
                raise HttpStatusError(
                    response,
                    f"{method.upper()} {url} answered {response.status_code}"
                    f"{f' after {attempt + 1} attempts' if attempt else ''}: {response.text[:200]}",
                )
            delay = min(retry_after_seconds(response, backoff_seconds * 2**attempt), max_retry_after)
        sleep(delay)
        attempt += 1
