"""Reading specs: YAML, JSON, a dict, or a visual designer's export, to one canonical dict.

Input is normalised once, here: an ``edges:`` list (React Flow's ``source``/``target``/
``sourceHandle``/``targetHandle``) becomes per-node ``inputs``, and designer-only keys (positions,
``data`` wrappers) are folded away, so the model and the version hash see one shape.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dp_assets.spec.document import (
    MAX_SPEC_CHARS,
    LimitedComposer,
    SpecLoadError,
    SpecShapeError,
    check_document,
    check_json_depth,
    check_text,
)
from dp_assets.spec.secret_forms import upgrade_nodes
from dp_resources.json_objects import shown_key, unique_keys

__all__ = ["SpecLoadError", "SpecShapeError", "normalise_spec", "parse_spec_text", "read_spec_file", "read_spec_text"]

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
# Keys a visual designer exports that carry layout only.
DESIGNER_KEYS = ("position", "positionAbsolute", "width", "height", "selected", "dragging")
DEFAULT_OUTPUT = "result"


class SpecYamlLoader(LimitedComposer, yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 reads ``on:`` (pandas' join key) as True.

    Dates stay text (``2024-01-01`` is the string a JSON spec would hold: specs are stored as
    JSON), and nesting and alias expansion are bounded while composing (``document``). A key
    written twice in one mapping is refused (YAML says keys are unique; PyYAML kept the last,
    so a reader of the file saw a value that never ran); a merge key (``<<``) may still be
    overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys may be overridden; a complex key is the constructor's to refuse
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {shown_key(key)} twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_NOT_IMPLICIT = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
SpecYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NOT_IMPLICIT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=SpecYamlLoader)  # noqa: S506 - a SafeLoader subclass


def read_spec_file(path: str | Path) -> dict[str, Any]:
    return parse_spec_text(read_spec_text(path), source=str(path))


def read_spec_text(path: str | Path) -> str:
    """A spec file's text, read no further than the size limit; never blocks on a FIFO."""
    path = Path(path)
    try:
        if not path.is_file():  # a FIFO or device would block or never end
            raise SpecLoadError(f"{path}: not a regular file")
        with path.open(encoding="utf-8") as handle:
            text = handle.read(MAX_SPEC_CHARS + 1)  # no more than the limit, whatever the size
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, SpecLoadError):
            raise
        raise SpecLoadError(f"{path}: cannot read the file: {exc}") from None
    return text


def parse_spec_text(text: str, source: str = "<text>") -> dict[str, Any]:
    """Parse and normalise; any text gives a spec dict or a ``SpecLoadError`` naming ``source``."""
    check_text(text, source)
    try:
        if text.lstrip().startswith("{"):
            check_json_depth(text, source)
            data = json.loads(text, object_pairs_hook=unique_keys)
        else:
            data = load_yaml(text)
    # ValueError: json's own errors, and integers longer than Python converts (4,300 digits);
    # RecursionError: a last guard, the limits above keep parsers far from it.
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        if isinstance(exc, SpecLoadError):
            raise
        raise SpecLoadError(f"{source}: not valid YAML or JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise SpecLoadError(f"{source}: a flow spec must be a mapping, got {type(data).__name__}")
    try:
        return normalise_spec(data)
    except SpecShapeError as exc:
        raise SpecShapeError(exc.message, flow=exc.flow, node=exc.node, field=exc.field, source=source) from None


def normalise_spec(data: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical dict of a spec: designer nodes unwrapped, edges folded into node inputs.

    Total over JSON values: a document that breaks the limits of ``document``, or edges that
    cannot be folded, raise ``SpecShapeError``; every other odd shape is kept as it is for
    validation to report with its place."""
    if not isinstance(data, Mapping):
        raise SpecShapeError(f"a flow spec must be a mapping, got {type(data).__name__}")
    check_document(data)
    spec = dict(data)
    nodes = spec.get("nodes")
    if nodes is not None and not isinstance(nodes, list):
        # pydantic would read a mapping's keys as the list: an error about 'nodes[0]' misleads.
        raise SpecShapeError(f"must be a list of nodes, got {type(nodes).__name__}", flow=_flow_id(spec), field="nodes")
    if nodes is None:
        # Absent: nothing to unwrap or fold; the model reports the missing nodes.
        if spec.get("edges") is not None:
            raise SpecShapeError("'edges' need a 'nodes' list to connect", flow=_flow_id(spec), field="edges")
        spec.pop("edges", None)
        return spec
    # Old ways of writing a secret are read as ${env:NAME} here, the one door (with a warning).
    nodes = upgrade_nodes([_unwrap_designer_node(n) for n in nodes], _flow_id(spec))
    edges = spec.pop("edges", None)
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("inputs"), str):
            node["inputs"] = [node["inputs"]]
    if edges is not None:
        nodes = _fold_edges(nodes, edges, _flow_id(spec))
    spec["nodes"] = nodes
    return spec


def _flow_id(spec: Mapping[str, Any]) -> str | None:
    return spec.get("id") if isinstance(spec.get("id"), str) else None


def _unwrap_designer_node(node: Any) -> Any:
    """React Flow nodes keep what we need under ``data``: ``{id, type, data: {params, ...}}``."""
    if not isinstance(node, Mapping):
        return node
    node = {k: v for k, v in node.items() if k not in DESIGNER_KEYS}
    data = node.pop("data", None)
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in ("label",):
                node.setdefault("description", value)
            elif key == "nodeType":
                node.setdefault("type", value)
            else:
                node.setdefault(key, value)
    return node


def _fold_edges(nodes: list[Any], edges: Any, flow_id: str | None) -> list[Any]:
    """Each edge becomes an input of its target node (a named one with ``targetHandle``).

    Only string ids take part (an id of another type is the model's error to report); an edge
    whose ends or handles are not strings, or whose target's ``inputs`` is neither a list nor a
    mapping, is refused here with its place, since it cannot be folded."""
    by_id: dict[str, Any] = {}
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            by_id[node["id"]] = node
    if not isinstance(edges, list):
        raise SpecShapeError("'edges' must be a list of {source, target} objects", flow=flow_id, field="edges")
    for position, edge in enumerate(edges):
        field = f"edges[{position}]"
        if not isinstance(edge, Mapping) or "source" not in edge or "target" not in edge:
            raise SpecShapeError("an edge needs 'source' and 'target'", flow=flow_id, field=field)
        for key in ("source", "target", "sourceHandle", "targetHandle"):
            value = edge.get(key)
            if not isinstance(value, str) and not (value is None and key.endswith("Handle")):
                raise SpecShapeError(
                    f"must be a node id string, got {type(value).__name__}", flow=flow_id, field=f"{field}.{key}"
                )
        target = by_id.get(edge["target"])
        ref = edge["source"]
        handle = edge.get("sourceHandle")
        if handle and handle != DEFAULT_OUTPUT:
            ref = f"{ref}.{handle}"
        if target is None:
            # Keep the dangling edge visible to validation as an input of a missing node.
            by_id[edge["target"]] = target = {"id": edge["target"], "inputs": [], "_dangling": True}
            nodes.append(target)
        target_handle = edge.get("targetHandle")
        inputs = target.get("inputs") or ([] if not target_handle else {})
        if isinstance(inputs, (list, dict)):
            inputs = inputs.copy()  # the caller's document is never changed
        else:
            raise SpecShapeError(
                f"an edge ({field}) leads here, but 'inputs' is a {type(inputs).__name__}; "
                "write inputs as a list of node ids or a mapping of input names to node ids",
                flow=flow_id,
                node=edge["target"],
                field="inputs",
            )
        if target_handle:
            if isinstance(inputs, list):
                inputs = {str(i): v for i, v in enumerate(inputs)}
            inputs[str(target_handle)] = ref
        else:
            if isinstance(inputs, dict):
                inputs[str(len(inputs))] = ref
            else:
                inputs.append(ref)
        target["inputs"] = inputs
    return nodes


def canonical_json(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def spec_version(spec: Mapping[str, Any]) -> str:
    """Content hash of the canonical form: key order and whitespace do not change it."""
    return hashlib.sha256(canonical_json(normalise_spec(spec)).encode()).hexdigest()[:16]


def split_ref(ref: str) -> tuple[str, str]:
    """``'node.output'`` -> ``('node', 'output')``; ``'node'`` -> ``('node', 'result')``."""
    node, _, output = ref.partition(".")
    return node, output or DEFAULT_OUTPUT
