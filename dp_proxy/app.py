"""The authenticating reverse proxy: an ASGI app that streams HTTP and WebSockets to the webserver.

Every request is authenticated first (401 without credentials, S1), then checked by
:mod:`dp_proxy.policy` (S2-S4), then streamed to the webserver with the credentials
removed. A password is hashed in a worker thread (a few at a time), never on the event loop, and
only while the client's failed-login allowance lasts (429 with ``Retry-After`` after that), so a
flood of wrong passwords neither blocks the proxy nor other clients' logins. Responses lose any
CORS header (the webserver must never be readable cross-origin) and gain anti-framing headers
(a framed UI is a click-jacking target for the launch button).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from anyio import CapacityLimiter, to_thread
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from dp_auth.access import TOKEN_PREFIX, AccessStore
from dp_auth.permissions import LOCAL_ADMIN, Principal
from dp_proxy.auth import Authenticator
from dp_proxy.graphql_rules import Need
from dp_proxy.oidc import PREFIX as OIDC_PREFIX
from dp_proxy.oidc import OidcLogin
from dp_proxy.policy import GRAPHQL_PATH, Refusal, check_http, check_websocket, normalise_path
from dp_proxy.roles import ProxyRoles, header_bytes, identity_headers
from dp_proxy.settings import ProxySettings
from dp_proxy.throttle import LoginThrottle, client_key
from dp_proxy.websocket_pipe import deny, pipe
from dp_resources.store import FlowStore

log = logging.getLogger("dp_proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers the webserver never sees: the proxy's credentials and forwarding headers that
#: only the proxy may set.
DROPPED_REQUEST = HOP_BY_HOP | {
    "authorization",
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-user",
    "x-dp-identity",
}
#: Who an unauthenticated request is (it is answered 401 before anything looks at it).
ANONYMOUS = Principal()

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class DagsterProxy:
    """ASGI application; one per upstream webserver."""

    def __init__(self, settings: ProxySettings) -> None:
        settings.require_credentials()
        self.settings = settings
        self.auth = Authenticator(settings.users, [token.get_secret_value() for token in settings.tokens])
        self.throttle = LoginThrottle(
            burst=settings.login_burst,
            per_minute=settings.login_per_minute,
            lockout_seconds=settings.login_lockout_seconds,
        )
        self._password_slots: CapacityLimiter | None = None  # made on the event loop
        self._client: httpx.AsyncClient | None = None
        self.roles: ProxyRoles | None = None
        self.oidc = OidcLogin(settings.oidc) if settings.oidc is not None else None
        if settings.roles:
            assert settings.store_url is not None  # require_credentials
            store = FlowStore(settings.store_url.get_secret_value())
            store.upgrade()
            self.roles = ProxyRoles(AccessStore(store), lambda: self.client)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            timeout = httpx.Timeout(self.settings.read_timeout_seconds, connect=self.settings.connect_timeout_seconds)
            self._client = httpx.AsyncClient(base_url=self.settings.upstream, timeout=timeout, follow_redirects=False)
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _unauthorized(self) -> Response:
        challenges = {
            "Basic": f'Basic realm="{self.settings.realm}", charset="UTF-8"',
            "Bearer": f'Bearer realm="{self.settings.realm}"',
        }
        response = PlainTextResponse("authentication required\n", status_code=401)
        for scheme in self.auth.schemes:
            response.headers.append("www-authenticate", challenges[scheme])
        return response

    def _throttled(self, retry_after: int) -> Response:
        return PlainTextResponse(
            "too many failed logins from this address; try again later\n",
            status_code=429,
            headers={"retry-after": str(retry_after)},
        )

    async def _authenticate(self, scope: Scope, authorization: str | None) -> tuple[Response | None, Principal]:
        """``(None, principal)`` when the request is authenticated, else the 401 or 429 to answer."""
        if self.oidc is not None and authorization is None:
            signed_in = self.oidc.principal(Request(scope))
            if signed_in is not None:
                return None, self._with_groups(signed_in)
        service_token = self._service_token(authorization)
        if not self.auth.carries_credentials(authorization) and service_token is None:
            return self._unauthorized(), ANONYMOUS
        client = client_key((scope.get("client") or ("", 0))[0])
        # A locked-out client learns nothing, not even from cheap checks (a cached password).
        locked = self.throttle.retry_after(client)
        if locked:
            return self._throttled(locked), ANONYMOUS
        quick = self.auth.quick_principal(authorization)
        if quick is not None:
            return None, self._principal(quick, authorization)
        wait = self.throttle.take(client)  # before hashing, so a flood cannot outrun the count
        if wait:
            return self._throttled(wait), ANONYMOUS
        if service_token is not None and self.roles is not None:
            found = await self.roles.token_principal(service_token)
            if found is None:
                log.warning("failed token login from %s", client)
                return self._unauthorized(), ANONYMOUS
            self.throttle.give_back(client)
            return None, found
        if self._password_slots is None:
            self._password_slots = CapacityLimiter(self.settings.password_check_threads)
        name = await to_thread.run_sync(self.auth.principal, authorization, limiter=self._password_slots)
        if name is None:
            log.warning("failed login from %s", client)
            return self._unauthorized(), ANONYMOUS
        self.throttle.give_back(client)
        return None, self._principal(name, authorization)

    def _service_token(self, authorization: str | None) -> str | None:
        """A store's service token (``Bearer dpt_...``), when roles are on."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if self.roles is None or scheme.lower() != "bearer" or not value.startswith(TOKEN_PREFIX):
            return None
        return value

    def _principal(self, name: str, authorization: str | None) -> Principal:
        # The shared DP_PROXY_TOKEN predates roles: it keeps acting as the platform's admin. Only
        # a Bearer header proves it: a Basic user may be called "token" too.
        if name == "token" and (authorization or "").strip().lower().startswith("bearer "):
            return LOCAL_ADMIN
        return self._with_groups(Principal(user=name))

    def _with_groups(self, principal: Principal) -> Principal:
        """The user's groups: those the login named (an ID token's) and ``DP_PROXY_GROUPS``'."""
        listed = {group for group, users in self.settings.groups.items() if principal.user in users}
        return Principal(user=principal.user, groups=principal.groups | listed)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        headers = {key.lower(): value for key, value in request.headers.items()}
        response: Response
        sign_in = self.oidc is not None and normalise_path(request.url.path).startswith(OIDC_PREFIX)
        denied, principal = (
            (None, ANONYMOUS) if sign_in else await self._authenticate(scope, headers.get("authorization"))
        )
        if sign_in and self.oidc is not None:
            response = await self.oidc.handle(request)  # the sign-in itself needs no login
        elif denied is not None:
            browser = request.method == "GET" and "text/html" in headers.get("accept", "")
            response = self.oidc.login_redirect(request) if self.oidc is not None and browser else denied
        elif request.method == "OPTIONS":
            # Answered here, with no CORS headers: a cross-origin preflight fails.
            response = Response(status_code=204, headers={"allow": "GET, HEAD, POST"})
        else:
            refusal = check_http(
                request.method,
                request.url.path,
                headers,
                set(request.query_params.keys()),
                self.settings,
            )
            body: bytes | None = None
            launches: list[Need] = []
            if refusal is None and self.roles is not None and normalise_path(request.url.path) == GRAPHQL_PATH:
                refusal, body, launches = await self.roles.read_and_judge(request, principal)
            if refusal:
                response = self._refused(refusal, request)
            elif launches:
                response = await self._forward_launch(request, scope, principal, body, launches)
            else:
                response = await self._forward(request, scope, principal, body)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        await response(scope, receive, send)

    def _refused(self, refusal: Refusal, request: Request) -> Response:
        log.warning(
            "refused %s %s from %s: %s",
            request.method,
            request.url.path,
            request.client.host if request.client else "?",
            refusal.reason,
        )
        headers = {"allow": "POST"} if refusal.status == 405 else None
        return PlainTextResponse(f"{refusal.reason}\n", status_code=refusal.status, headers=headers)

    async def _judge_subscription(self, text: str, principal: Principal) -> str | None:
        return None if self.roles is None else await self.roles.judge_subscription(text, principal)

    def _upstream_headers(self, scope: Scope, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        kept = [(k, v) for k, v in headers if k.lower() not in DROPPED_REQUEST]
        client = scope.get("client")
        if client:
            kept.append(("x-forwarded-for", client[0]))
        host = dict(headers).get("host")
        if host:
            kept.append(("x-forwarded-host", host))
        kept.append(("x-forwarded-proto", scope.get("scheme", "http").replace("ws", "http")))
        return kept

    def _upstream_request(
        self, request: Request, scope: Scope, principal: Principal, body: bytes | None, *, plain: bool = False
    ) -> httpx.Request:
        """The request to send the webserver; ``plain``: ask for an uncompressed answer."""
        target = scope.get("raw_path") or request.url.path.encode()
        url = target.decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        # Stream a body only when there is one: a GET must not turn into a chunked upload.
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        # As bytes: Starlette decoded them as latin-1, and a value outside ASCII is legal HTTP.
        forwarded = self._upstream_headers(scope, list(request.headers.items())) + identity_headers(
            principal, self.settings.identity_key
        )
        if body is not None:  # read whole to judge it: sent as read, with its true length
            forwarded = [(k, v) for k, v in forwarded if k.lower() != "content-length"]
        if plain:
            forwarded = [(k, v) for k, v in forwarded if k.lower() != "accept-encoding"] + [
                ("accept-encoding", "identity")
            ]
        headers = [(name.encode("latin-1"), header_bytes(value)) for name, value in forwarded]
        content: Any = body if body is not None else (request.stream() if has_body else None)
        return self.client.build_request(request.method, url, headers=headers, content=content)

    async def _forward_launch(
        self, request: Request, scope: Scope, principal: Principal, body: bytes | None, launches: list[Need]
    ) -> Response:
        """Forward a launch, read its (small) answer whole, and audit the runs it started."""
        try:
            upstream = await self.client.send(self._upstream_request(request, scope, principal, body, plain=True))
        except httpx.HTTPError as error:
            log.error("upstream %s unreachable: %s", self.settings.upstream, error)
            return PlainTextResponse("the Dagster webserver is unreachable\n", status_code=502)
        assert self.roles is not None  # launches are found only with roles on
        await self.roles.audit_launches(principal, launches, upstream.content)
        dropped = HOP_BY_HOP | {"content-length", "content-encoding"}
        headers = [
            (key, value)
            for key, value in upstream.headers.multi_items()
            if key.lower() not in dropped and not key.lower().startswith("access-control-")
        ]
        response = Response(upstream.content, status_code=upstream.status_code)
        response.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        return response

    async def _forward(
        self, request: Request, scope: Scope, principal: Principal = ANONYMOUS, body: bytes | None = None
    ) -> Response:
        upstream_request = self._upstream_request(request, scope, principal, body)
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.HTTPError as error:
            log.error("upstream %s unreachable: %s", self.settings.upstream, error)
            return PlainTextResponse("the Dagster webserver is unreachable\n", status_code=502)
        response = StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        # Raw bytes go through as they came (still compressed), so the upstream's own
        # Content-Length and Content-Encoding stay true.
        response.raw_headers = [
            (key.lower(), value)
            for key, value in upstream.headers.raw
            if key.lower().decode("latin-1") not in HOP_BY_HOP and not key.lower().startswith(b"access-control-")
        ]
        return response

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        headers = {key.lower(): value for key, value in websocket.headers.items()}
        denied, principal = await self._authenticate(scope, headers.get("authorization"))
        if denied is not None:
            await self._deny(websocket, denied)
            return
        refusal = check_websocket(headers, self.settings)
        if refusal:
            log.warning("refused WebSocket %s: %s", websocket.url.path, refusal.reason)
            await self._deny(websocket, PlainTextResponse(f"{refusal.reason}\n", status_code=refusal.status))
            return
        await self._pipe_websocket(websocket, scope, principal)

    async def _deny(self, websocket: WebSocket, response: Response) -> None:
        await deny(websocket, response)

    async def _pipe_websocket(self, websocket: WebSocket, scope: Scope, principal: Principal) -> None:
        base = self.settings.upstream.replace("http", "ws", 1)
        url = base + (scope.get("raw_path") or websocket.url.path.encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        forwarded = self._upstream_headers(scope, list(websocket.headers.items())) + identity_headers(
            principal, self.settings.identity_key
        )
        forwarded = [
            (k, v) for k, v in forwarded if not k.lower().startswith("sec-websocket-") and k.lower() != "origin"
        ]

        async def judge(text: str) -> str | None:
            return await self._judge_subscription(text, principal)

        await pipe(websocket, url, forwarded, open_timeout=self.settings.connect_timeout_seconds, judge=judge)


def create_app(settings: ProxySettings | None = None) -> DagsterProxy:
    """The proxy app for ``settings`` (default: :meth:`ProxySettings.from_env`)."""
    return DagsterProxy(settings or ProxySettings.from_env())
