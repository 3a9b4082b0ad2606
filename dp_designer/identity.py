"""Who calls the designer's API, and the check of what they may do.

The embedded default has no login: every caller is the local admin, as before. With roles on
(``DP_AUTH_ENFORCE``), a caller is a service token (``Authorization: Bearer dpt_...``) or the
user the proxy in front vouches for (``X-DP-Identity``, signed with ``DP_AUTH_IDENTITY_KEY``,
:mod:`dp_auth.identity`); anyone else is answered 401.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from dp_auth.access import AccessStore
from dp_auth.identity import IDENTITY_HEADER, verify_identity
from dp_auth.permissions import LOCAL_ADMIN, Action, Principal
from dp_designer.http import USER_HEADER, ApiError


@dataclass(frozen=True)
class DesignerAuth:
    """Roles on: the store's grants and tokens, and the key the proxy signs identities with."""

    access: AccessStore
    identity_key: bytes

    def __post_init__(self) -> None:
        if not self.identity_key:
            raise ValueError("roles in the designer need DP_AUTH_IDENTITY_KEY (the proxy signs callers with it)")

    def principal(self, request: Request) -> Principal:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = self.access.authenticate_token(value.strip())
            if token is None:
                raise ApiError(401, "the bearer token is not a live service token")
            return token
        user = verify_identity(self.identity_key, request.headers.get(IDENTITY_HEADER))
        if user is None:
            raise ApiError(401, "sign in through the proxy, or send a service token (Authorization: Bearer dpt_...)")
        return user


def caller(request: Request) -> Principal:
    """The request's principal (worked out once per request)."""
    known = getattr(request.state, "principal", None)
    if known is None:
        auth: DesignerAuth | None = request.app.state.auth
        known = LOCAL_ADMIN if auth is None else auth.principal(request)
        request.state.principal = known
    return known


def author_of(request: Request) -> str | None:
    """Who stored a version: the signed-in user or token; without roles, the proxy's user header."""
    principal = caller(request)
    if principal.local_admin:
        user = request.headers.get(USER_HEADER)
        return user[:256] if user else None
    return (principal.user or principal.label)[:256]


def check_flow(request: Request, action: Action, flow_id: str) -> str:
    """Refuse (403) unless the caller may act on the flow; its workspace."""
    return request.app.state.store_api.access.check_flow(caller(request), action, flow_id)
