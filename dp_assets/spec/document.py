"""A spec is a bounded JSON document: limits checked before and while parsing, and on any dict.

Specs come from files, the flow store, the designer and the API, and any of them may be
hostile. Everything downstream (edge folding, templates, pydantic, hashing, the JSON column of
the store) walks the document, so the limits are enforced once, here:

- size: the text is refused above ``MAX_SPEC_CHARS`` before a parser sees it;
- nesting: JSON text is pre-scanned for bracket depth (``json`` recurses per level and a
  10,000-deep array is a ``RecursionError``), YAML is checked while it is composed;
- expansion: YAML aliases are counted and the size of what they expand to is measured at
  compose time, so an alias bomb (a few lines that expand to billions of values) is refused
  in linear time instead of being walked for minutes later;
- values: only JSON values (string keys, finite numbers, text without NUL or lone surrogates),
  because the store keeps specs as JSON and the version is a hash of their JSON form.

A breach is a :class:`SpecShapeError` naming the flow, node and field where it was found.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from yaml.composer import ComposerError
from yaml.events import AliasEvent

MAX_SPEC_CHARS = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 1_000_000
MAX_ALIASES = 1_000


class SpecLoadError(ValueError):
    """A spec file or document that cannot be read at all (not YAML/JSON, not a mapping)."""


class SpecShapeError(SpecLoadError):
    """A document that is JSON/YAML but breaks a limit or is no spec's shape, at one place."""

    def __init__(
        self,
        message: str,
        *,
        flow: str | None = None,
        node: str | None = None,
        field: str = "<spec>",
        source: str | None = None,
    ):
        self.flow, self.node, self.field, self.message, self.source = flow, node, field, message, source
        where = f"{source}: " if source else ""
        where += f"flow '{flow}', " if flow else ""
        where += f"node '{node}', " if node is not None else ""
        super().__init__(f"{where}field '{field}': {message}")


class YamlLimitError(ComposerError):
    """A YAML document nested too deep, or whose aliases expand too far."""


# ---------------------------------------------------------------------------------------------
# Text: size and JSON depth before parsing


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def check_text(text: str, source: str) -> None:
    if len(text) > MAX_SPEC_CHARS:
        raise SpecLoadError(
            f"{source}: the spec is {len(text):,} characters; the limit is "
            f"{MAX_SPEC_CHARS:,} (split the flow, or read large data from a file)"
        )


def check_json_depth(text: str, source: str) -> None:
    """Bracket depth of JSON text outside strings, without recursion (``json`` recurses)."""
    depth = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise SpecLoadError(
                f"{source}: nested deeper than {MAX_DEPTH} levels; a flow spec never needs that much nesting"
            )


# ---------------------------------------------------------------------------------------------
# YAML: depth and alias expansion checked while composing


class LimitedComposer:
    """Mixin for a PyYAML loader: refuses deep nesting and alias expansion at compose time.

    Each composed node records ``(height, expanded size)``; an alias adds its anchor's record, so
    the size of the fully expanded document is known without expanding it."""

    _limit_depth: int
    _limit_aliases: int
    _limit_measures: dict[int, tuple[int, int]]
    _limit_stack: list[list[int]]

    if TYPE_CHECKING:  # supplied by the PyYAML loader this is mixed into (its parser)

        def check_event(self, *choices: type) -> bool: ...

        def peek_event(self) -> Any: ...

    # `super()` below is the loader's Composer, which follows this mixin in the loader's MRO; mypy
    # sees only `object` after the mixin, hence the ignores.
    def compose_document(self) -> Any:
        self._limit_depth = 0
        self._limit_aliases = 0
        self._limit_measures = {}
        self._limit_stack = [[0, 0]]
        return super().compose_document()  # type: ignore[misc]

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)  # type: ignore[misc]
            self._limit_aliases += 1
            if self._limit_aliases > MAX_ALIASES:
                raise YamlLimitError(None, None, f"more than {MAX_ALIASES} aliases", mark)
            height, size = self._limit_measures.get(id(node), (1, 1))
            self._add_measure(height, size, mark)
            return node
        mark = self.peek_event().start_mark
        self._limit_depth += 1
        if self._limit_depth > MAX_DEPTH:
            raise YamlLimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._limit_stack.append([0, 1])
        node = super().compose_node(parent, index)  # type: ignore[misc]
        height, size = self._limit_stack.pop()
        self._limit_depth -= 1
        self._limit_measures[id(node)] = (height + 1, size)
        self._add_measure(height + 1, size, mark)
        return node

    def _add_measure(self, height: int, size: int, mark: Any) -> None:
        top = self._limit_stack[-1]
        top[0] = max(top[0], height)
        top[1] += size
        if top[0] + self._limit_depth > MAX_DEPTH:
            raise YamlLimitError(None, None, f"aliases expand to nesting deeper than {MAX_DEPTH} levels", mark)
        if top[1] > MAX_VALUES:
            raise YamlLimitError(None, None, f"expands to more than {MAX_VALUES:,} values", mark)


# ---------------------------------------------------------------------------------------------
# Values: any dict handed to the loader (from a parser, the store or an API)


def check_document(data: Any, source: str | None = None) -> None:
    """Raise :class:`SpecShapeError` unless ``data`` is a bounded JSON value (iterative walk).

    Each value's place is kept as a link to its parent's ``(link, key)``, not a copied tuple, so
    the walk costs the same per value at any depth; the path is spelled out only for an error.
    """
    stack: list[tuple[Any, int, Any]] = [(data, 0, None)]
    count = 0
    while stack:
        value, depth, link = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise _shape_error(data, _path(link), f"the spec has more than {MAX_VALUES:,} values", source)
        if depth > MAX_DEPTH:
            raise _shape_error(data, _path(link)[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels", source)
        if isinstance(value, str):
            if not value.isascii() or "\x00" in value:
                _check_text(data, _path(link), value, source)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _shape_error(data, _path(link), f"key {key!r} is not a string; quote it", source)
                if not key.isascii() or "\x00" in key:
                    _check_text(data, _path(link), key, source)
                stack.append((item, depth + 1, (link, key)))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, (link, index)) for index, item in enumerate(value))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _shape_error(data, _path(link), f"{value} is not a finite number", source)
        elif not (value is None or isinstance(value, (bool, int))):
            raise _shape_error(
                data,
                _path(link),
                f"a {type(value).__name__} is not a JSON value (write it as a string, number, list or mapping)",
                source,
            )


def _path(link: Any) -> tuple[Any, ...]:
    """The keys from the document's root to the value a ``(parent link, key)`` chain ends at."""
    keys: list[Any] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return tuple(reversed(keys))


def count_values(value: Any, limit: int = MAX_VALUES) -> int:
    """Values in a JSON value (itself included), counting no further than ``limit + 1``."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _check_text(data: Any, path: tuple[Any, ...], text: str, source: str | None) -> None:
    if text.isascii():
        if "\x00" in text:
            raise _shape_error(data, path, "text contains a NUL character", source)
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _shape_error(data, path, "text is not valid Unicode (a lone surrogate)", source) from None
    if "\x00" in text:
        raise _shape_error(data, path, "text contains a NUL character", source)


def _shape_error(data: Any, path: tuple[Any, ...], message: str, source: str | None) -> SpecShapeError:
    flow, node, field = locate(data, path)
    return SpecShapeError(message, flow=flow, node=node, field=field, source=source)


def locate(data: Any, path: tuple[Any, ...] | list[Any]) -> tuple[str | None, str | None, str]:
    """``(flow id, node id, field)`` of a path in a spec, as validation errors name them."""
    flow = data.get("id") if isinstance(data, Mapping) and isinstance(data.get("id"), str) else None
    path = list(path)
    node = None
    if len(path) >= 2 and path[0] == "nodes" and isinstance(path[1], int):
        nodes = data.get("nodes") if isinstance(data, Mapping) else None
        item = nodes[path[1]] if isinstance(nodes, list) and path[1] < len(nodes) else None
        node_id = item.get("id") if isinstance(item, Mapping) else None
        node = node_id if isinstance(node_id, str) else f"#{path[1]}"
        path = path[2:]
    return flow, node, dotted(path) or "<spec>"


def dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
