"""OpenID Connect login at the proxy (``DP_PROXY_OIDC_ISSUER``), with Authlib's Starlette client.

The authorization code flow with PKCE (S256) and a nonce: ``/_dp/oidc/login`` sends the browser
to the provider (found by discovery), ``/_dp/oidc/callback`` exchanges the code and validates the
ID token (signature against the provider's JWKS, issuer, audience, expiry, nonce) — all Authlib's.
The ID token's ``email`` (else its ``sub``) becomes the user and its groups claim the user's
groups, so grants to users and groups apply as for the proxy's other logins. The sign-in lasts
``DP_PROXY_SESSION_HOURS`` in a cookie signed with ``DP_PROXY_SESSION_KEY`` (the same signed
form as the identity the proxy hands on, :mod:`dp_auth.identity`).

Each login's state (with its PKCE verifier and nonce) is kept in this process's memory and used
once, bound to the browser by a signed cookie: a replayed callback, or one from another browser,
is refused. So a login must finish at the proxy process that started it (one proxy, or sticky
sessions in front of several).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client._compat import httpx2
from authlib.integrations.starlette_client import OAuth, OAuthError
from joserfc.errors import JoseError
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from dp_auth.identity import seal, sign_identity, unseal, verify_identity
from dp_auth.permissions import Principal

PREFIX = "/_dp/oidc/"
LOGIN_PATH = PREFIX + "login"
CALLBACK_PATH = PREFIX + "callback"
LOGOUT_PATH = PREFIX + "logout"
SESSION_COOKIE = "dp_session"
FLOW_COOKIE = "dp_oidc_flow"
#: How long a browser may take at the provider between login and callback.
FLOW_SECONDS = 600
_MAX_PENDING = 10_000
#: What a provider's answers can raise in Authlib: unreachable, not JSON, missing fields, a token
#: that fails its checks (joserfc: signature, claims; Authlib: the rest).
_PROVIDER_ERRORS = (
    httpx.HTTPError,
    httpx2.HTTPError,
    ValueError,
    KeyError,
    TypeError,
    RuntimeError,
    JoseError,
    AuthlibBaseError,
)


class OidcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(description="The provider's issuer URL (discovery below it).")
    client_id: str
    client_secret: SecretStr | None = None
    redirect_url: str = Field(description="The proxy's callback URL, as registered at the provider.")
    groups_claim: str = "groups"
    session_key: SecretStr
    session_hours: float = Field(default=8, gt=0)


class _PendingLogins:
    """Authlib's state cache: each started login's data, in memory, removed when used."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        found = self._items.get(key)
        return found[1] if found is not None and found[0] > time.time() else None

    async def set(self, key: str, value: str, expires_in: float) -> None:
        now = time.time()
        while self._items and (len(self._items) >= _MAX_PENDING or next(iter(self._items.values()))[0] < now):
            self._items.popitem(last=False)
        self._items[key] = (now + min(expires_in, FLOW_SECONDS), value)

    async def delete(self, key: str) -> None:
        self._items.pop(key, None)


def _local_path(text: str | None) -> str:
    """Where to go after signing in: a path of this proxy only (never another site)."""
    if not text or not text.startswith("/") or text.startswith("//") or "\\" in text:
        return "/"
    parts = urlsplit(text)
    return "/" if parts.scheme or parts.netloc else text


class OidcLogin:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._key = settings.session_key.get_secret_value().encode()
        self._secure = settings.redirect_url.startswith("https://")
        oauth = OAuth(cache=_PendingLogins())
        self.client: Any = oauth.register(
            "oidc",
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value() if settings.client_secret else None,
            server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": f"openid email profile {settings.groups_claim}", "code_challenge_method": "S256"},
        )

    def principal(self, request: Request) -> Principal | None:
        """The signed-in user of the request's session cookie, or None."""
        return verify_identity(self._key, request.cookies.get(SESSION_COOKIE))

    def login_redirect(self, request: Request) -> Response:
        """Where an unauthenticated browser is sent: the login, coming back to this page."""
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)

    async def handle(self, request: Request) -> Response:
        """Answer one of the login paths (``/_dp/oidc/...``)."""
        path = request.url.path
        if path == LOGIN_PATH:
            return await self._login(request)
        if path == CALLBACK_PATH:
            return await self._callback(request)
        if path == LOGOUT_PATH:
            response = PlainTextResponse("signed out\n")
            response.delete_cookie(SESSION_COOKIE, path="/")
            return response
        return PlainTextResponse("not found\n", status_code=404)

    async def _login(self, request: Request) -> Response:
        session: dict[str, Any] = {}
        request.scope["session"] = session
        try:
            response = await self.client.authorize_redirect(request, self.settings.redirect_url)
        except _PROVIDER_ERRORS as error:  # discovery: the provider unreachable or answering nonsense
            return PlainTextResponse(f"the sign-in provider is unreachable: {type(error).__name__}\n", 502)
        flow = seal(
            self._key, {"session": session, "next": _local_path(request.query_params.get("next"))}, ttl=FLOW_SECONDS
        )
        response.set_cookie(
            FLOW_COOKIE, flow, max_age=FLOW_SECONDS, path=PREFIX, httponly=True, secure=self._secure, samesite="lax"
        )
        return response

    async def _callback(self, request: Request) -> Response:
        flow = unseal(self._key, request.cookies.get(FLOW_COOKIE))
        if flow is None or not isinstance(flow.get("session"), dict):
            return self._refused("the sign-in expired or was not started in this browser")
        request.scope["session"] = flow["session"]
        try:
            metadata = await self.client.load_server_metadata()
            # Authlib checks the audience only when told to: a token the provider issued to another
            # client (even naming this one as ``azp``) must not sign anyone in here.
            claims_options = {
                "iss": {"essential": True, "values": [metadata.get("issuer")]},
                "aud": {"essential": True, "value": self.settings.client_id},
            }
            token = await self.client.authorize_access_token(request, claims_options=claims_options)
        except OAuthError as error:
            return self._refused(error.description or error.error or "the provider refused")
        except _PROVIDER_ERRORS as error:  # the ID token's signature or claims, the token endpoint
            return self._refused(f"{type(error).__name__}: {str(error)[:200]}")
        claims = token.get("userinfo")
        if not claims:
            return self._refused("the provider sent no ID token")
        user = claims.get("email") or claims.get("sub")
        groups = claims.get(self.settings.groups_claim) or []
        if not isinstance(user, str) or not user or not isinstance(groups, list):
            return self._refused("the ID token names no user (email or sub) or its groups are not a list")
        ttl = self.settings.session_hours * 3600
        signed = sign_identity(self._key, user, [g for g in groups if isinstance(g, str)], ttl=ttl)
        response = RedirectResponse(_local_path(flow.get("next")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE, signed, max_age=int(ttl), path="/", httponly=True, secure=self._secure, samesite="lax"
        )
        response.delete_cookie(FLOW_COOKIE, path=PREFIX)
        return response

    @staticmethod
    def _refused(reason: str) -> Response:
        return PlainTextResponse(f"sign-in refused: {reason}; start again at {LOGIN_PATH}\n", status_code=401)
