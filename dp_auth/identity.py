"""The caller's identity as the proxy hands it to the servers behind it (the designer).

The proxy has checked the login; it removes any identity header the client sent and adds its
own, signed with a key it shares with those servers (``DP_AUTH_IDENTITY_KEY``):
``X-DP-Identity: <base64url JSON {user, groups, exp}>.<base64url HMAC-SHA256>``. A server
behind it believes a header only when the signature holds and it has not expired, so a client
that reaches the server without the proxy cannot name itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from typing import Any

from dp_auth.permissions import Principal

IDENTITY_HEADER = "x-dp-identity"
#: Short: a header copied out of a log or a proxy's trace is soon worthless.
DEFAULT_TTL_SECONDS = 60
MAX_HEADER_CHARS = 8192


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def seal(key: bytes, data: dict[str, Any], *, now: float | None = None, ttl: float = DEFAULT_TTL_SECONDS) -> str:
    """``data`` (JSON) signed with ``key`` and valid until ``ttl`` seconds from ``now``."""
    if not key:
        raise ValueError("a signing key must not be empty")
    expires = int((time.time() if now is None else now) + ttl)
    body = json.dumps({**data, "exp": expires}, separators=(",", ":"), sort_keys=True)
    payload = _b64(body.encode())
    return f"{payload}.{_mac(key, payload)}"


def unseal(key: bytes, value: str | None, *, now: float | None = None) -> dict[str, Any] | None:
    """The data :func:`seal` signed, or None: unsigned, tampered, expired or malformed."""
    if not key or not value or len(value) > MAX_HEADER_CHARS:
        return None
    payload, dot, mac = value.strip().partition(".")
    if not dot or not hmac.compare_digest(_mac(key, payload).encode(), mac.encode("utf-8", "replace")):
        return None
    try:
        data = json.loads(_unb64(payload))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
        return None
    if (time.time() if now is None else now) > data["exp"]:
        return None
    return data


def sign_identity(
    key: bytes, user: str, groups: Iterable[str] = (), *, now: float | None = None, ttl: float = DEFAULT_TTL_SECONDS
) -> str:
    """The header value naming ``user`` and ``groups`` until ``ttl`` seconds from ``now``."""
    return seal(key, {"user": user, "groups": sorted(set(groups))}, now=now, ttl=ttl)


def sign_principal(
    key: bytes, principal: Principal, *, now: float | None = None, ttl: float = DEFAULT_TTL_SECONDS
) -> str:
    """The header value naming a user (with groups) or a service token the proxy authenticated."""
    if principal.token is not None:
        return seal(key, {"token": principal.token}, now=now, ttl=ttl)
    if not principal.user:
        raise ValueError("only a user or a service token is named to the servers behind the proxy")
    return sign_identity(key, principal.user, principal.groups, now=now, ttl=ttl)


def verify_identity(key: bytes, value: str | None, *, now: float | None = None) -> Principal | None:
    """The principal a header value names, or None: unsigned, tampered, expired or malformed."""
    data = unseal(key, value, now=now)
    if data is None:
        return None
    if isinstance(data.get("token"), str) and data["token"]:
        return Principal(token=data["token"])
    user, groups = data.get("user"), data.get("groups")
    if not isinstance(user, str) or not user:
        return None
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        return None
    return Principal(user=user, groups=frozenset(groups))
