"""A local OpenID Connect provider for tests, built from Authlib's own authorization server and
grant classes: discovery, JWKS, the authorization endpoint (it signs in whoever the test names,
without a form), and the token endpoint (authorization code + PKCE, an RS256 ID token).

A test makes it misbehave the way a hostile or broken provider would (``tamper``): sign the ID
token with a key its JWKS does not hold, name another audience, send an expired token, or send
the nonce of an earlier login. Serve it with ``serve_in_thread(provider.app())`` on loopback.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class _Request(OAuth2Request):
    """Authlib's request from a Starlette one (its headers stay case-insensitive)."""

    def __init__(self, method: str, url: str, headers: Any, data: dict[str, str]) -> None:
        super().__init__(method, url, headers=headers)
        self.payload = BasicOAuth2Payload(data)
        self._data = data

    @property
    def form(self) -> dict[str, str]:
        return self._data if self.method == "POST" else {}

    @property
    def args(self) -> dict[str, str]:
        return self._data if self.method == "GET" else {}


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        return scope

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class LocalProvider:
    """One client, the user the test signs in, and the tampering it asks for."""

    def __init__(self, client_id: str = "dp-proxy", client_secret: str = "s3cret") -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.issuer = ""  # set by the test once served (its loopback URL)
        self.redirect_uri = ""
        self.key = RSAKey.generate_key(2048, parameters={"kid": "good"}, private=True)
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "good"}, private=True)
        self.user: dict[str, Any] = {"sub": "u-1", "email": "ann@example.com", "groups": []}
        self.tamper: str | None = None  # "signature", "audience", "expired", "nonce"
        self.codes: dict[str, Code] = {}
        self.nonces: list[str] = []  # every nonce a login brought, oldest first
        self.token_requests: list[dict[str, str]] = []
        self.server = self._server()

    # --- Authlib's server ------------------------------------------------------------------

    def _server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> Client | None:
                if client_id != provider.client_id:
                    return None
                return Client(provider.client_id, provider.client_secret, provider.redirect_uri)

            def save_token(self, token: dict, request: OAuth2Request) -> None:
                pass

            def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> Response:
                if isinstance(body, dict):
                    return JSONResponse(body, status_code=status, headers=dict(headers))
                return Response(body, status_code=status, headers=dict(headers))

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                pass

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                provider.codes[code] = Code(
                    code,
                    request.client.get_client_id(),
                    data.get("redirect_uri"),
                    request.scope,
                    dict(provider.user),
                    data.get("nonce"),
                    data.get("code_challenge"),
                    data.get("code_challenge_method"),
                )
                if data.get("nonce"):
                    provider.nonces.append(data["nonce"])

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> dict[str, Any]:
                return authorization_code.user

        class IdToken(OpenIDCode):
            def resolve_client_private_key(self, client: Client) -> RSAKey:
                return provider.key

            def get_client_claims(self, client: Client) -> dict[str, Any]:
                return {"iss": provider.issuer, "aud": [client.get_client_id()]}

            def get_encode_header(self, client: Client) -> dict[str, str]:
                return {"alg": "RS256", "kid": "good"}

            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return False

            def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
                return UserInfo(user)

            def encode_id_token(self, token: dict, request: OAuth2Request) -> str:
                return provider.tampered(super().encode_id_token(token, request))

        server = Server()
        server.register_token_generator("default", BearerTokenGenerator(lambda *a, **k: secrets.token_urlsafe(24)))
        server.register_grant(CodeGrant, [CodeChallenge(required=True), IdToken(require_nonce=True)])
        return server

    def tampered(self, id_token: str) -> str:
        """The ID token as the test asked the provider to spoil it."""
        if self.tamper is None:
            return id_token
        decoded = jwt.decode(id_token, self.key)
        claims, key = dict(decoded.claims), self.key
        if self.tamper == "signature":
            key = self.other_key  # same kid, a key the JWKS does not hold
        elif self.tamper == "audience":
            claims["aud"], claims["azp"] = ["another-client"], self.client_id  # issued to another client
        elif self.tamper == "expired":
            claims["iat"], claims["exp"] = int(time.time()) - 7200, int(time.time()) - 3600
        elif self.tamper == "nonce":
            claims["nonce"] = self.nonces[0]  # an earlier login's
        return jwt.encode({"alg": "RS256", "kid": "good"}, claims, key)

    # --- HTTP --------------------------------------------------------------------------------

    async def _discovery(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: Request) -> JSONResponse:
        return JSONResponse(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: Request) -> Response:
        """Signs in ``self.user`` at once (the consent a person would give)."""
        oauth_request = _Request("GET", str(request.url), request.headers, dict(request.query_params))
        return self.server.create_authorization_response(oauth_request, grant_user=self.user)

    async def _token(self, request: Request) -> Response:
        form = dict(await request.form())
        self.token_requests.append({k: str(v) for k, v in form.items()})
        oauth_request = _Request("POST", str(request.url), request.headers, {k: str(v) for k, v in form.items()})
        return self.server.create_token_response(oauth_request)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
            ]
        )
