"""Sealed secret references: the ``${env:NAME}`` a spec author wrote, told apart from look-alike data.

Node params are rendered in steps (flow params by the runtime, upstream data and agent arguments
inside the node) and secrets are resolved last, so by then the author's text and the text that
templating put in are one string. Scanning that string for ``${env:NAME}`` let a caller who
controls a launch param, an event payload or an upstream value compose a reference from pieces
(``$`` + ``{env:NAME}``) and have a secret sent wherever the spec sends that text.

So the author's references are marked when the spec's own text is first rendered, before any
template is filled: each ``${env:NAME}`` in the literal parts of a string becomes a sealed
reference ``$[dp-secret:NAME:MAC]`` (``seal_written``). The MAC is an HMAC of the name under a
key made once per process and never stored or sent, so data cannot forge one; and every value a
template substitutes goes through ``as_written``, which turns any sealed reference inside it back
into plain ``${env:NAME}`` text, so a seal that escaped (say, echoed by a server) cannot be
replayed either. Nodes resolve only sealed references; plain ``${env:NAME}`` text is data and stays
literal. This module has no dependencies so the spec renderer can use it cheaply.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
SEALED_REFERENCE = re.compile(r"\$\[dp-secret:([A-Za-z_][A-Za-z0-9_]*):([0-9a-f]{32})\]")

# One random key per process, made on first use (no work at import). A forked child keeps it, so
# params rendered before a fork (a node under timeout_seconds) still resolve in the child.
_key: list[bytes] = []
_key_lock = threading.Lock()


def _process_key() -> bytes:
    with _key_lock:
        if not _key:
            _key.append(os.urandom(32))
        return _key[0]


def _mac(name: str) -> str:
    return hmac.new(_process_key(), name.encode(), hashlib.sha256).hexdigest()[:32]


def seal_written(text: str) -> str:
    """Text the spec author wrote, with each ``${env:NAME}`` in it sealed as the author's reference.

    Call it only on text that nobody but the author (or the deployment's operator) controls.
    """
    return ENV_REFERENCE.sub(lambda m: f"$[dp-secret:{m.group(1)}:{_mac(m.group(1))}]", text)


def genuine(match: re.Match) -> bool:
    """Whether a ``SEALED_REFERENCE`` match was sealed by this process."""
    return hmac.compare_digest(match.group(2), _mac(match.group(1)))


def sealed_names(text: str) -> Iterator[str]:
    """Names of the genuine sealed references in ``text``."""
    for match in SEALED_REFERENCE.finditer(text):
        if genuine(match):
            yield match.group(1)


def as_written(value: Any) -> Any:
    """``value`` with every sealed reference inside its strings shown as plain ``${env:NAME}`` text.

    Applied to everything a template substitutes (so data never carries a seal into params) and
    to text shown or sent without resolving (prompts, messages, errors).
    """
    if isinstance(value, str):
        if "$[dp-secret:" not in value:
            return value
        return SEALED_REFERENCE.sub(lambda m: "${env:" + m.group(1) + "}", value)
    if isinstance(value, Mapping):
        return {as_written(k) if isinstance(k, str) else k: as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_written(v) for v in value]
    if isinstance(value, tuple):
        return tuple(as_written(v) for v in value)
    return value
