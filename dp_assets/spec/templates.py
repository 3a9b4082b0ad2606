"""``{{ params.x }}`` references in node params, rendered from the run's flow params.

A value that is exactly one reference takes the param's value with its type (so ``n: "{{
params.limit }}"`` is an integer); a reference inside longer text is formatted into the text.
Nothing else is evaluated: the only thing a template can reach is a named flow param.

Each string is split once into the author's literal text and template references. Secret
references (``${env:NAME}``) are recognised in the literal text only, and sealed there
(``dp_resources.secrets``) before any param is filled in; a param's value goes in as plain
text (``as_written`` unseals anything in it) and is never looked at for references, so a launch
param cannot form one, alone or with the text beside it (``prefix$`` + ``{env:NAME}``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dp_assets.spec import inert
from dp_resources.secrets import as_written, seal_written

TEMPLATE = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: ``{{ partition.key }}``, ``{{ partition.start }}``, ``{{ partition.end }}``: the run's
#: partition, given to ``render`` under the names ``partition.key``... (``compiler.partitions``).
PARTITION_TEMPLATE = re.compile(r"\{\{\s*(partition\.(?:key|start|end))\s*\}\}")
# One reference of either kind; group 1 names it: "params.NAME" or "partition.FIELD".
_ANY = re.compile(r"\{\{\s*(params\.[A-Za-z_][A-Za-z0-9_]*|partition\.(?:key|start|end))\s*\}\}")
_WHOLE_ANY = re.compile(r"^\s*\{\{\s*(params\.[A-Za-z_][A-Za-z0-9_]*|partition\.(?:key|start|end))\s*\}\}\s*$")


def references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(field path, param name)`` referenced anywhere inside ``value``."""
    return _matches(value, TEMPLATE, path)


def partition_references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(field path, "partition.key"|"partition.start"|"partition.end")`` inside ``value``."""
    return _matches(value, PARTITION_TEMPLATE, path)


def _matches(value: Any, pattern: re.Pattern[str], path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        for match in pattern.finditer(value):
            yield path, match.group(1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _matches(item, pattern, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _matches(item, pattern, f"{path}[{index}]")


def render(value: Any, params: Mapping[str, Any], *, seal: bool = True, inert_params: bool = False) -> Any:
    """``value`` (the author's params) with flow params filled in and secret references sealed.

    ``seal=False`` for node types that resolve no secrets: the author's ``${env:NAME}`` stays the
    text it was, so such a node never sees (or logs) the sealed form. ``inert_params=True`` for
    node types that fill data templates themselves: a param's value goes in ``inert``, and the
    node ``restore``s the text after filling its templates (``dp_assets.spec.inert``).
    """
    own_text = seal_written if seal else _unchanged
    if inert_params:

        def literal(text: str) -> str:
            return inert.literal(own_text(text))

        def param(value: Any) -> Any:
            return inert.inert(as_written(value))

        return _render(value, params, literal, param, inert.joined)
    return _render(value, params, own_text, as_written, _plain_join)


Join = Callable[[Iterator[tuple[str, bool]]], str]


def _render(
    value: Any, params: Mapping[str, Any], literal: Callable[[str], str], param: Callable[[Any], Any], join: Join
) -> Any:
    if isinstance(value, str):
        whole = _WHOLE_ANY.match(value)
        if whole and _known(whole.group(1), params):
            return param(_lookup(whole.group(1), params))
        # split() alternates literal text (even places) and reference names (odd places)
        parts = _ANY.split(value)
        return join(
            (literal(part), False)
            if i % 2 == 0
            else (
                (param(str(_lookup(part, params))), True)
                if _known(part, params)
                else (literal(f"{{{{ {part} }}}}"), False)
            )
            for i, part in enumerate(parts)
        )
    if isinstance(value, Mapping):
        return {key: _render(item, params, literal, param, join) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, params, literal, param, join) for item in value]
    return value


def _plain_join(pieces: Iterator[tuple[str, bool]]) -> str:
    return "".join(text for text, _ in pieces)


def _known(name: str, params: Mapping[str, Any]) -> bool:
    """A flow param always is (validation checked the name); the partition only in a
    partitioned run: elsewhere (validation's stand-ins) its reference stays text."""
    return name.startswith("params.") or name in params


def _lookup(name: str, params: Mapping[str, Any]) -> Any:
    return params[name.removeprefix("params.")] if name.startswith("params.") else params[name]


def _unchanged(text: str) -> str:
    return text
