"""Credentials of the proxy: salted scrypt password hashes and bearer tokens.

Open-source Dagster has no login, so whoever reaches the webserver can launch, terminate and wipe.
The proxy is the login. Passwords are stored as ``scrypt:N:r:p:SALT:HASH`` (URL-safe base64, no
``$`` so that the value survives docker compose's ``.env`` interpolation); hash one with
``python -m dp_resources.proxy hash-password``.

A browser repeats its Basic credentials on every request and scrypt is deliberately slow, so a
verified ``Authorization`` value is remembered (keyed by an HMAC with a per-process random key,
never the password itself) in a small bounded cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024
_CACHE_SIZE = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password`` in the proxy's storage format."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM
    )
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:{_b64(salt)}:{_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; malformed hashes never match."""
    try:
        kind, n, r, p, salt, digest = encoded.split(":")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def parse_users(text: str) -> dict[str, str]:
    """``name:scrypt:...`` entries separated by commas, spaces or new lines -> {name: hash}."""
    users: dict[str, str] = {}
    for entry in text.replace(",", " ").split():
        name, sep, encoded = entry.partition(":")
        if not sep or not name or not encoded.startswith("scrypt:"):
            raise ValueError(
                f"DP_PROXY_USERS entry {entry[:20]!r}... is not NAME:scrypt:...; make one with "
                "`python -m dp_resources.proxy hash-password NAME`"
            )
        users[name] = encoded
    return users


class Authenticator:
    """Checks an ``Authorization`` header against users (Basic) and tokens (Bearer)."""

    def __init__(self, users: Mapping[str, str], tokens: Iterable[str] = ()) -> None:
        self._users = dict(users)
        self._tokens = [token.encode() for token in tokens if token]
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()

    @property
    def schemes(self) -> list[str]:
        return (["Basic"] if self._users else []) + (["Bearer"] if self._tokens else [])

    def principal(self, authorization: str | None) -> str | None:
        """The user (or ``"token"``) the header proves, or None."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self._tokens:
            candidate = value.encode()
            # Compare with every token so timing does not tell which one was close.
            matched = [hmac.compare_digest(candidate, token) for token in self._tokens]
            return "token" if any(matched) else None
        if scheme == "basic" and self._users:
            return self._basic(value)
        return None

    def _basic(self, value: str) -> str | None:
        key = hmac.new(self._key, value.encode(), hashlib.sha256).digest()
        if key in self._verified:
            self._verified.move_to_end(key)
            return self._verified[key]
        try:
            name, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        encoded = self._users.get(name)
        if not sep or encoded is None or not verify_password(password, encoded):
            return None
        self._verified[key] = name
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return name
