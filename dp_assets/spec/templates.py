"""``{{ params.x }}`` references in node params, rendered from the run's flow params.

A value that is exactly one reference takes the param's value with its type (so ``n: "{{
params.limit }}"`` is an integer); a reference inside longer text is formatted into the text.
Nothing else is evaluated: the only thing a template can reach is a named flow param.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

TEMPLATE = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
WHOLE = re.compile(r"^\s*\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}\s*$")


def references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(field path, param name)`` referenced anywhere inside ``value``."""
    if isinstance(value, str):
        for match in TEMPLATE.finditer(value):
            yield path, match.group(1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from references(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from references(item, f"{path}[{index}]")


def render(value: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = WHOLE.match(value)
        if whole:
            return params[whole.group(1)]
        return TEMPLATE.sub(lambda m: str(params[m.group(1)]), value)
    if isinstance(value, Mapping):
        return {key: render(item, params) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, params) for item in value]
    return value
