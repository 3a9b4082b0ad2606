"""Bounded reading of HTTP response bodies: decompression that cannot blow up memory (V5).

httpx decodes ``Content-Encoding`` with one unbounded ``zlib.decompress`` call per network chunk,
and stacks decoders for ``Content-Encoding: gzip, gzip``. A 30 KB double-gzipped body of zeros
expands to gigabytes inside that single call, before any byte cap can look at it. ``read_body``
reads the raw bytes instead and inflates each layer in steps of at most ``STEP`` bytes, so memory
stays near the cap whatever the compression ratio, and the total deadline is checked between
steps (a slow stream cannot outlive it).

``HttpResource`` calls it in place of ``response.iter_bytes()``; any client built on httpx can.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

STEP = 64 * 1024
MAX_LAYERS = 2
SUPPORTED = ("gzip", "x-gzip", "deflate", "identity")


class BodyTooLarge(IOError):
    """The (decoded) body is over the cap, or its encoding is refused."""


class BodyTimedOut(TimeoutError):
    """The body did not arrive before the total deadline."""


def content_codings(header: str | None) -> list[str]:
    """The codings of a ``Content-Encoding`` header in the order they were applied."""
    codings = [c.strip().lower() for c in (header or "").split(",") if c.strip()]
    return [c for c in codings if c != "identity"]


def _inflate(chunks: Iterable[bytes], coding: str) -> Iterator[bytes]:
    """Inflate ``chunks`` one layer, yielding at most ``STEP`` bytes at a time."""
    wbits = 16 + zlib.MAX_WBITS if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
    decoder = zlib.decompressobj(wbits)
    first = True
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = decoder.decompress(data, STEP)
            except zlib.error:
                if coding == "deflate" and first:  # raw deflate without the zlib header
                    decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    first = False
                    continue
                raise
            first = False
            if out:
                yield out
            if decoder.unconsumed_tail:
                data = decoder.unconsumed_tail
            elif decoder.eof and decoder.unused_data and coding != "deflate":
                data = decoder.unused_data  # a further gzip member
                decoder = zlib.decompressobj(wbits)
            else:
                data = b""
    tail = decoder.flush(STEP)
    if tail:
        yield tail


def decoded_chunks(raw: Iterable[bytes], content_encoding: str | None) -> Iterator[bytes]:
    """The body decoded layer by layer; refuses unknown codings and more than ``MAX_LAYERS``."""
    codings = content_codings(content_encoding)
    unknown = [c for c in codings if c not in SUPPORTED]
    if unknown:
        raise BodyTooLarge(f"content-encoding {', '.join(unknown)} is not supported (only gzip and deflate)")
    if len(codings) > MAX_LAYERS:
        raise BodyTooLarge(f"content-encoding has {len(codings)} layers; at most {MAX_LAYERS} are decoded")
    stream: Iterable[bytes] = raw
    for coding in reversed(codings):
        stream = _inflate(stream, coding)
    yield from stream


def read_body(response: Any, cap: int, deadline: float, where: str, timeout_seconds: float | None = None) -> bytes:
    """Read an httpx streaming ``response`` whole, decoded, up to ``cap`` bytes, before ``deadline``.

    ``deadline`` is a ``time.monotonic()`` value. Raises ``BodyTooLarge`` or ``BodyTimedOut``
    (subclasses of ``IOError``/``TimeoutError``) naming ``where``.
    """
    declared = response.headers.get("content-length")
    if (
        declared
        and declared.isdigit()
        and int(declared) > cap
        and not content_codings(response.headers.get("content-encoding"))
    ):
        raise BodyTooLarge(f"response from {where} declares {declared} bytes, over the {cap}-byte cap")
    limit = f"{timeout_seconds:g}s" if timeout_seconds else "its deadline"
    raw_size = 0

    def raw_chunks() -> Iterator[bytes]:
        nonlocal raw_size
        for chunk in response.iter_raw():
            raw_size += len(chunk)
            if raw_size > cap:
                raise BodyTooLarge(f"response from {where} is over the {cap}-byte cap")
            if time.monotonic() > deadline:
                raise BodyTimedOut(f"response from {where} took longer than {limit}")
            yield chunk

    parts: list[bytes] = []
    size = 0
    try:
        for part in decoded_chunks(raw_chunks(), response.headers.get("content-encoding")):
            size += len(part)
            if size > cap:
                raise BodyTooLarge(f"response from {where} is over the {cap}-byte cap once decompressed")
            if time.monotonic() > deadline:
                raise BodyTimedOut(f"response from {where} took longer than {limit}")
            parts.append(part)
    except zlib.error as exc:
        raise BodyTooLarge(f"response from {where} could not be decompressed: {exc}") from None
    return b"".join(parts)
