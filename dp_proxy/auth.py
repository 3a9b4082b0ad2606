"""Credentials of the proxy: salted scrypt password hashes and bearer tokens.

Open-source Dagster has no login, so whoever reaches the webserver can launch, terminate and wipe.
The proxy is the login. Passwords are stored as ``scrypt:N:r:p:SALT:HASH`` (URL-safe base64, no
``$`` so that the value survives docker compose's ``.env`` interpolation); hash one with
``python -m dp_proxy hash-password``.

A browser repeats its Basic credentials on every request and scrypt is deliberately slow, so a
verified ``Authorization`` value is remembered (keyed by an HMAC with a per-process random key,
never the password itself) in a small bounded cache.

Whether a user exists must not show in the time a login takes: a name that is not configured is
checked against a dummy hash of the same cost as the users' own, so every well-formed Basic
attempt costs exactly one scrypt. The hash is slow on purpose; :mod:`dp_proxy.app`
runs it in a worker thread behind a per-client throttle (:mod:`dp_proxy.throttle`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 64 * 1024 * 1024
_CACHE_SIZE = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    """The one place a password is hashed (tests count its calls and costs)."""
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM)


def hash_password(
    password: str,
    *,
    salt: bytes | None = None,
    n: int = SCRYPT_N,
    r: int = SCRYPT_R,
    p: int = SCRYPT_P,
) -> str:
    """A salted scrypt hash of ``password`` in the proxy's storage format."""
    salt = salt or secrets.token_bytes(16)
    digest = _derive(password.encode(), salt, n, r, p)
    return f"scrypt:{n}:{r}:{p}:{_b64(salt)}:{_b64(digest)}"


def _cost(encoded: str) -> tuple[int, int, int] | None:
    parts = encoded.split(":")
    try:
        return (int(parts[1]), int(parts[2]), int(parts[3])) if len(parts) == 6 else None
    except ValueError:
        return None


def dummy_hash_like(encoded_hashes: Iterable[str]) -> str:
    """A hash of a random password at the cost most of ``encoded_hashes`` use (the default cost
    without any), checked for names that are not users so they take as long as real ones."""
    costs = Counter(cost for cost in map(_cost, encoded_hashes) if cost is not None)
    n, r, p = costs.most_common(1)[0][0] if costs else (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return hash_password(secrets.token_urlsafe(16), n=n, r=r, p=p)


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``; malformed hashes never match."""
    try:
        kind, n, r, p, salt, digest = encoded.split(":")
        if kind != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _derive(password.encode(), _unb64(salt), int(n), int(r), int(p))
    except (ValueError, binascii.Error, OverflowError, MemoryError):
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
                "`python -m dp_proxy hash-password NAME`"
            )
        users[name] = encoded
    return users


class Authenticator:
    """Checks an ``Authorization`` header against users (Basic) and tokens (Bearer)."""

    def __init__(self, users: Mapping[str, str], tokens: Iterable[str] = ()) -> None:
        self._users = dict(users)
        self._dummy = dummy_hash_like(self._users.values()) if self._users else ""
        self._tokens = [token.encode() for token in tokens if token]
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, str] = OrderedDict()
        self._cache_lock = threading.Lock()  # checks run in worker threads

    @property
    def schemes(self) -> list[str]:
        return (["Basic"] if self._users else []) + (["Bearer"] if self._tokens else [])

    def _split(self, authorization: str | None) -> tuple[str, str] | None:
        """``(scheme, value)`` of a header of a scheme this proxy checks, else None."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if (scheme == "bearer" and self._tokens) or (scheme == "basic" and self._users):
            return scheme, value.strip()
        return None

    def carries_credentials(self, authorization: str | None) -> bool:
        """Whether the header is a login attempt (one that may fail and is then counted)."""
        return self._split(authorization) is not None

    def quick_principal(self, authorization: str | None) -> str | None:
        """The principal when it is known without hashing a password (a token, or Basic
        credentials verified before), else None: then :meth:`principal` decides, slowly."""
        return self._prove(authorization, lambda value: self._cached(self._cache_key(value)))

    def _cached(self, key: bytes) -> str | None:
        with self._cache_lock:
            name = self._verified.get(key)
            if name is not None:
                self._verified.move_to_end(key)
            return name

    def principal(self, authorization: str | None) -> str | None:
        """The user (or ``"token"``) the header proves, or None."""
        return self._prove(authorization, self._basic)

    def _prove(self, authorization: str | None, basic: Callable[[str], str | None]) -> str | None:
        split = self._split(authorization)
        if split is None:
            return None
        scheme, value = split
        return self._bearer(value) if scheme == "bearer" else basic(value)

    def _bearer(self, value: str) -> str | None:
        candidate = value.encode()
        # Compare with every token so timing does not tell which one was close.
        matched = [hmac.compare_digest(candidate, token) for token in self._tokens]
        return "token" if any(matched) else None

    def _cache_key(self, value: str) -> bytes:
        return hmac.new(self._key, value.encode(), hashlib.sha256).digest()

    def _basic(self, value: str) -> str | None:
        key = self._cache_key(value)
        cached = self._cached(key)
        if cached is not None:
            return cached
        try:
            name, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):  # binascii.Error; non-ASCII text
            return None
        encoded = self._users.get(name) if sep else None
        # An unknown name costs the same hash as a known one: timing does not reveal users.
        matches = verify_password(password, encoded or self._dummy)
        if encoded is None or not matches:
            return None
        with self._cache_lock:
            self._verified[key] = name
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return name
