"""Reference docs generated from the params models, so docs and validation cannot disagree."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from dp_assets.catalog.base import Catalog

CATEGORIES = ("source", "transform", "sink", "control", "tool")
NODES_DOC = "docs/nodes.md"


def _type_text(schema: dict[str, Any] | bool) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "anyOf" in schema:
        return " or ".join(_type_text(s) for s in schema["anyOf"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    kind = schema.get("type", "any")
    if kind == "array":
        items = schema.get("items") or schema.get("prefixItems")
        if isinstance(items, list):
            return "[" + ", ".join(_type_text(i) for i in items) + "]"
        return f"list of {_type_text(items or {})}"
    if kind == "object" and "additionalProperties" in schema:
        return f"mapping to {_type_text(schema['additionalProperties'] or {})}"
    return str(kind)


def params_table(model: type[BaseModel]) -> list[str]:
    schema = model.model_json_schema(by_alias=True)
    props = schema.get("properties", {})
    if not props:
        return ["No params."]
    required = set(schema.get("required", []))
    rows = ["| param | type | default | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        default = "required" if name in required else json.dumps(prop.get("default"), default=str)
        description = (prop.get("description") or "").replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_text(prop)} | {default} | {description} |")
    return rows


def render_nodes_markdown(catalog: Catalog, examples: dict[str, dict[str, Any]] | None = None) -> str:
    examples = examples or {}
    lines = [
        "# Node catalog",
        "",
        "Generated from the params models by `dp docs` (a test fails when this file is stale).",
        "Params use pandas' argument names where pandas has one.",
        "",
    ]
    for category in CATEGORIES:
        names = [n for n, t in catalog.items() if t.category == category]
        if not names:
            continue
        lines += [f"## {category.capitalize()}s", ""]
        for name in names:
            node_type = catalog[name]
            lines += [f"### `{name}`", "", node_type.description or "", ""]
            lines.append(f"Inputs: {node_type.inputs.describe()}. Outputs: {', '.join(node_type.outputs)}.")
            if node_type.resources:
                lines.append(f"Resources: {', '.join(sorted(node_type.resources))}.")
            lines += ["", *params_table(node_type.params_model), ""]
            if name in examples:
                lines += ["```yaml", yaml.safe_dump(examples[name], sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"
