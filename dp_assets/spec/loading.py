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

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
# Keys a visual designer exports that carry layout only.
DESIGNER_KEYS = ("position", "positionAbsolute", "width", "height", "selected", "dragging")
DEFAULT_OUTPUT = "result"


class SpecYamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 reads ``on:`` (pandas' join key) as True."""


SpecYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=SpecYamlLoader)  # noqa: S506 - a SafeLoader subclass


class SpecLoadError(ValueError):
    """A spec file or document that cannot be read at all (not YAML/JSON, not a mapping)."""


def read_spec_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecLoadError(f"{path}: cannot read the file: {exc}") from exc
    return parse_spec_text(text, source=str(path))


def parse_spec_text(text: str, source: str = "<text>") -> dict[str, Any]:
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else load_yaml(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecLoadError(f"{source}: not valid YAML or JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise SpecLoadError(f"{source}: a flow spec must be a mapping, got {type(data).__name__}")
    return normalise_spec(data)


def normalise_spec(data: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical dict of a spec: designer nodes unwrapped, edges folded into node inputs."""
    spec = dict(data)
    nodes = [_unwrap_designer_node(n) for n in spec.get("nodes") or []]
    edges = spec.pop("edges", None)
    if edges is not None:
        nodes = _fold_edges(nodes, edges)
    for node in nodes:
        if isinstance(node, dict) and isinstance(node.get("inputs"), str):
            node["inputs"] = [node["inputs"]]
    if "nodes" in spec or nodes:
        spec["nodes"] = nodes
    return spec


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


def _fold_edges(nodes: list[Any], edges: Any) -> list[Any]:
    by_id = {n.get("id"): n for n in nodes if isinstance(n, dict)}
    if not isinstance(edges, list):
        raise SpecLoadError("'edges' must be a list of {source, target} objects")
    for position, edge in enumerate(edges):
        if not isinstance(edge, Mapping) or "source" not in edge or "target" not in edge:
            raise SpecLoadError(f"edges[{position}]: an edge needs 'source' and 'target'")
        target = by_id.get(edge["target"])
        ref = str(edge["source"])
        handle = edge.get("sourceHandle")
        if handle and handle != DEFAULT_OUTPUT:
            ref = f"{ref}.{handle}"
        if target is None:
            # Keep the dangling edge visible to validation as an input of a missing node.
            by_id[edge["target"]] = target = {"id": edge["target"], "inputs": [], "_dangling": True}
            nodes.append(target)
        target_handle = edge.get("targetHandle")
        inputs = target.get("inputs") or ([] if not target_handle else {})
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
