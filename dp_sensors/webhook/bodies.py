"""Request bodies as bounded JSON objects: every malformed or hostile body is a 4xx with a message.

A body is read under three bounds before anything else looks at it: a size cap (413; a
declared ``Content-Length`` over the cap is refused before reading), a total deadline for the
whole body (408, then the connection is closed: a client sending one byte every few seconds
cannot hold it open), and a media type (415 unless JSON). It is then parsed under rules that
leave only plain JSON data: strict UTF-8, no ``NaN``/``Infinity``, no number that overflows to
infinity (``1e999999``), no duplicate keys, no text with NUL or unpaired surrogates (PostgreSQL
cannot store them, so they would fail later as a 5xx), and at most ``MAX_JSON_DEPTH`` levels of
nesting.

The depth is bounded twice: the size cap bounds the parser's work and its own recursion guard
(``RecursionError``) is answered as 400; then the nesting of the result is measured without
recursion before any recursive code (pydantic, ``json.dumps``, the event bus) sees it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_resources.json_objects import unique_keys

MAX_JSON_DEPTH = 32
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")


class Refused(Exception):
    """A request answered with ``status`` and a JSON ``{"detail": ...}``; nothing was done."""

    def __init__(self, status: int, detail: str, *, close: bool = False, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.close, self.extra = status, detail, close, extra

    def response(self) -> JSONResponse:
        headers: dict[str, str] = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="dp"'
        if self.status == 503:
            headers["Retry-After"] = "1"
        if self.close:
            # The rest of the body may still be on its way: do not wait for it.
            headers["Connection"] = "close"
        return JSONResponse({"detail": self.detail, **self.extra}, self.status, headers=headers)


def check_json_content_type(content_type: str | None, where: str) -> None:
    """No Content-Type, ``application/json`` or ``*/*+json``; a charset other than UTF-8: 415."""
    if content_type is None or not content_type.strip():
        return
    essence, *parameters = [part.strip().lower() for part in content_type.split(";")]
    is_json = essence == "application/json" or (essence.startswith("application/") and essence.endswith("+json"))
    if not is_json:
        raise Refused(415, f"the body for {where} must be JSON: send Content-Type: application/json")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise Refused(415, f"the body for {where} must be UTF-8 JSON, not {value.strip()!r}")


async def read_bounded_body(request: Request, max_bytes: int, timeout_seconds: float) -> bytes:
    """The body, refused as soon as it is known to exceed ``max_bytes`` (413) or to take longer
    than ``timeout_seconds`` in total (408); never more than the cap is buffered."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not _CONTENT_LENGTH.fullmatch(declared.strip()):
            raise Refused(400, "the Content-Length header is not a number", close=True)
        if int(declared) > max_bytes:
            raise Refused(413, f"the body is larger than the limit of {max_bytes} bytes", close=True)
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise Refused(413, f"the body is larger than the limit of {max_bytes} bytes", close=True)
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(
            408,
            f"the body did not arrive within {timeout_seconds:g} s; send the whole body at once",
            close=True,
        ) from None
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]}... is too large")
    return value


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise Refused(400, f"the body for {where} holds text with a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(400, f"the body for {where} holds text with an unpaired surrogate (\\ud800-\\udfff)") from None


def check_plain_json(value: Any, where: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Depth and text of a parsed body, walked without recursion (the nesting may be hostile)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node, where)
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise Refused(400, f"the body for {where} is nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_text(key, where)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in node)


def parse_json_object(raw: bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object from ``raw`` (an empty body is ``{}``), or :class:`Refused` (400/422)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(400, f"the body for {where} is not UTF-8 (bad byte at offset {exc.start})") from None
    if not text:
        return {}
    try:
        body = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=unique_keys,
        )
    except RecursionError:
        raise Refused(400, f"the body for {where} is nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, the hooks above, over-long integers
        raise Refused(400, f"the body for {where} is not valid JSON: {exc}") from None
    check_plain_json(body, where, max_depth)
    if not isinstance(body, dict):
        raise Refused(422, f"the body for {where} must be a JSON object")
    return body
