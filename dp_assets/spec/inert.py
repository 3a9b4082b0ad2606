"""Flow-param text that a node's own data templates must not read as templates.

Tool and agent nodes fill ``{{ input.x }}``, ``{{ row.x }}`` and ``{{ args.x }}`` in their params
from data, after the runtime has filled ``{{ params.x }}``. Without care a launch param whose value
is ``{{ input }}`` would be read as the author's template and send upstream data where the author
put the param. So for such nodes the runtime writes every param value inert: ``{{`` becomes a
private-use marker that no template pattern matches, and the node restores it once it has filled
its templates, in one pass. The author's literal text only has the marker itself escaped, so the
encoding is exact: ``restore`` gives back precisely what was written and substituted.

A template can also be formed *across* a param's edge: the author's ``{{`` followed by a param
``input }}``, or a param ending in ``{`` before the author's ``{ input }}``. So where a param's
text meets text holding a brace, :func:`joined` puts a ``BOUNDARY`` between them, which no
template pattern matches through (``restore`` removes it). Text without braces is left as it
is, so that params such as a URL's host are checked by the node's model as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MARK = "\ue000"
_ESCAPED_MARK = MARK + "\ue001"
_INERT_OPEN = MARK + "\ue002"
BOUNDARY = MARK + "\ue003"
_ENCODED = re.compile(MARK + "([\ue001\ue002\ue003])")
_DECODED = {"\ue001": MARK, "\ue002": "{{", "\ue003": ""}


def literal(text: str) -> str:
    """The author's text (or data a node inserts), encoded without changing its templates."""
    return text.replace(MARK, _ESCAPED_MARK) if MARK in text else text


def inert(value: Any) -> Any:
    """A param value (any JSON-like shape), encoded so that no ``{{`` in it opens a template."""
    if isinstance(value, str):
        return literal(value).replace("{{", _INERT_OPEN)
    if isinstance(value, Mapping):
        return {key: inert(item) for key, item in value.items()}
    if isinstance(value, list):
        return [inert(item) for item in value]
    return value


def joined(pieces: Iterable[tuple[str, bool]]) -> str:
    """The encoded pieces of one string, ``(text, is_param)``, joined with a ``BOUNDARY`` wherever
    a param meets a piece that holds a brace. Empty author text is passed over (two params can
    meet); an empty param is not: ``{{ params.p }}{{ input }} `` stays text when ``p`` is empty,
    instead of turning into the whole-value template ``{{ input }}``."""
    out: list[str] = []
    before: tuple[str, bool] | None = None
    for text, is_param in pieces:
        if not text and not is_param:
            continue
        if before is not None and (is_param or before[1]) and any(b in t for t in (text, before[0]) for b in "{}"):
            out.append(BOUNDARY)
        out.append(text)
        before = (text, is_param)
    return "".join(out)


def restore(value: Any) -> Any:
    """The text as written and substituted: every encoding of ``literal`` and ``inert`` undone."""
    if isinstance(value, str):
        if MARK not in value:
            return value
        return _ENCODED.sub(lambda m: _DECODED[m.group(1)], value)
    if isinstance(value, Mapping):
        return {key: restore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [restore(item) for item in value]
    return value
