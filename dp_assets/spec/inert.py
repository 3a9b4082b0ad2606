"""Flow-param text that a node's own data templates must not read as templates.

Tool and agent nodes fill ``{{ input.x }}``, ``{{ row.x }}`` and ``{{ args.x }}`` in their params
from data, after the runtime has filled ``{{ params.x }}``. Without care a launch param whose value
is ``{{ input }}`` would be read as the author's template and send upstream data where the author
put the param. So for such nodes the runtime writes every param value inert: ``{{`` becomes a
private-use marker that no template pattern matches, and the node restores it once it has filled
its templates, in one pass. The author's literal text only has the marker itself escaped, so the
encoding is exact: ``restore`` gives back precisely what was written and substituted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MARK = "\ue000"
_ESCAPED_MARK = MARK + "\ue001"
_INERT_OPEN = MARK + "\ue002"
_ENCODED = re.compile(MARK + "([\ue001\ue002])")


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


def restore(value: Any) -> Any:
    """The text as written and substituted: every encoding of ``literal`` and ``inert`` undone."""
    if isinstance(value, str):
        if MARK not in value:
            return value
        return _ENCODED.sub(lambda m: MARK if m.group(1) == "\ue001" else "{{", value)
    if isinstance(value, Mapping):
        return {key: restore(item) for key, item in value.items()}
    if isinstance(value, list):
        return [restore(item) for item in value]
    return value
