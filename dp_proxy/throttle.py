"""Failed logins per client: a token bucket with a lockout, so guessing is slow and a flood of
password checks from one client costs the proxy (and other users) almost nothing.

Each client address (an IPv6 client by its /64 network, which one host usually owns whole) has a
bucket of ``burst`` attempts that refills at ``per_minute``. A credential check that cannot be
answered cheaply takes one attempt *before* the slow password hash runs, and gives it back when
the credentials were right, so only failures count and concurrent requests cannot all slip in
before the first failure is recorded. An empty bucket locks the client out for
``lockout_seconds``; while locked every request with credentials gets 429 with ``Retry-After``
and no hash is computed. Other clients have their own buckets and are never affected.

The table of clients is bounded (least recently seen dropped first), so many addresses cannot
grow it without limit.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_CLIENTS = 10_000


@dataclass
class _Bucket:
    attempts: float
    updated: float
    locked_until: float = 0.0


def client_key(host: str | None) -> str:
    """The throttled identity of a client address: IPv4 as is, IPv6 by its /64 network."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


class LoginThrottle:
    """Token buckets of failed-login attempts, one per client key (thread-safe)."""

    def __init__(
        self,
        *,
        burst: int = 10,
        per_minute: float = 2.0,
        lockout_seconds: float = 60.0,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_minute <= 0 or lockout_seconds < 0 or max_clients < 1:
            raise ValueError("burst, per_minute and max_clients must be positive")
        self.burst, self.rate = burst, per_minute / 60.0
        self.lockout_seconds, self.max_clients = lockout_seconds, max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.attempts = min(self.burst, bucket.attempts + (now - bucket.updated) * self.rate)
            bucket.updated = now
        return bucket

    def _wait(self, bucket: _Bucket, now: float) -> float:
        """Seconds until the client may try again (0: now)."""
        if now < bucket.locked_until:
            return bucket.locked_until - now
        if bucket.attempts >= 1:
            return 0.0
        return (1 - bucket.attempts) / self.rate

    def retry_after(self, key: str) -> int:
        """Whole seconds the client must wait before any credentials are checked (0: none)."""
        with self._lock:
            now = self._clock()
            return math.ceil(self._wait(self._bucket(key, now), now))

    def take(self, key: str) -> int:
        """Take one attempt for a slow check: 0 when granted, else the seconds to wait."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            wait = self._wait(bucket, now)
            if wait > 0:
                return max(1, math.ceil(wait))
            bucket.attempts -= 1
            if bucket.attempts < 1:
                bucket.locked_until = now + self.lockout_seconds
            return 0

    def give_back(self, key: str) -> None:
        """The check succeeded: the attempt does not count, and a lockout it began is lifted."""
        with self._lock:
            now = self._clock()
            bucket = self._bucket(key, now)
            bucket.attempts = min(self.burst, bucket.attempts + 1)
            if bucket.attempts >= 1:
                bucket.locked_until = 0.0
