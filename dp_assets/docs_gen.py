"""Reference docs generated from the params models, so docs and validation cannot disagree."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from dp_assets.catalog.base import Catalog
from dp_assets.engine.coverage import ENGINES_INTRO, engines_line

CATEGORIES = ("source", "transform", "sink", "control", "tool")
NODES_DOC = "docs/nodes.md"
SETTINGS_DOC = "docs/settings.md"


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


def _default_text(prop: dict[str, Any]) -> str:
    if "default" in prop:
        return json.dumps(prop["default"], default=str)
    # A default_factory (pydantic leaves it out of the schema): an empty list or mapping here.
    return {"array": "[]", "object": "{}"}.get(prop.get("type", ""), "(computed)")


def _rows(schema: dict[str, Any], first: str) -> list[str]:
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    rows = [f"| {first} | type | default | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        default = "required" if name in required else _default_text(prop)
        description = (prop.get("description") or "").replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_text(prop)} | {default} | {description} |")
    return rows


def _refs(schema: Any) -> list[str]:
    """Names of the ``$defs`` a schema refers to, in the order written."""
    if isinstance(schema, dict):
        found = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        for value in schema.values():
            found += _refs(value)
        return found
    if isinstance(schema, list):
        return [name for item in schema for name in _refs(item)]
    return []


def params_table(model: type[BaseModel]) -> list[str]:
    """The params of a node type, then one table per nested model a param holds (a
    ``WindowFunctions`` function, a pagination, a tool's auth...), so every field a spec can
    write is listed with its description."""
    schema = model.model_json_schema(by_alias=True)
    if not schema.get("properties"):
        return ["No params."]
    lines = _rows(schema, "param")
    definitions = schema.get("$defs", {})
    queue, seen = _refs(schema.get("properties")), set()
    while queue:
        name = queue.pop(0)
        nested = definitions.get(name, {})
        if name in seen or not nested.get("properties"):
            continue
        seen.add(name)
        about = " ".join((nested.get("description") or "").split())
        lines += ["", f"`{name}`{': ' + about if about else ''}", "", *_rows(nested, "field")]
        queue += _refs(nested.get("properties"))
    return lines


def render_nodes_markdown(catalog: Catalog, examples: dict[str, dict[str, Any]] | None = None) -> str:
    examples = examples or {}
    lines = [
        "# Node catalog",
        "",
        "Generated from the params models by `dp docs` (a test fails when this file is stale).",
        "Params use pandas' argument names where pandas has one.",
        "",
        ENGINES_INTRO,
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
            lines.append(engines_line(name))
            if node_type.resources:
                lines.append(f"Resources: {', '.join(sorted(node_type.resources))}.")
            lines += ["", *params_table(node_type.params_model), ""]
            if name in examples:
                lines += ["```yaml", yaml.safe_dump(examples[name], sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def render_settings_markdown() -> str:
    """``docs/settings.md``: every variable of ``dp_settings.PlatformSettings``, by group."""
    from dp_settings import PlatformSettings
    from dp_settings.catalog import COMPOSE_VARIABLES, VARIABLE_PATTERNS, variables

    lines = [
        "# Settings",
        "",
        "Generated from `dp_settings.PlatformSettings` by `dp docs` (a test fails when this file is stale).",
        "Every process reads them once where it starts (the code location, the webhook receiver, the",
        "proxy, the CLI, a Celery worker, `python -m dp_deploy`) and passes them down; a value that",
        "does not parse stops it there, naming the variable. A variable set to an empty value counts",
        "as unset, except `DP_FLOWS_DIR` (empty: no spec files are imported) and `DP_PROXY_UPSTREAM`.",
        "A *secret* never shows in a log or a `repr`; resources receive secrets and connection URLs as",
        "`dg.EnvVar`s or read them when used, so none is written into Dagster's run config.",
        "",
    ]
    rows = variables()
    groups = dict.fromkeys(row.group for row in rows)
    for group in groups:
        if group:
            model = PlatformSettings.model_fields[group].annotation
            doc = (model.__doc__ or "").strip().splitlines()[0].replace("``", "`")
            lines += [f"## `{group}`: {doc}", ""]
        else:
            lines += ["## Paths and services", ""]
        lines += ["| variable | type | default | description |", "|---|---|---|---|"]
        for row in rows:
            if row.group == group:
                kind = "secret" if row.secret else row.type
                lines.append(f"| `{row.name}` | {_cell(kind)} | {_cell(row.default)} | {_cell(row.description)} |")
        lines.append("")
    lines += [
        "## Families of variables",
        "",
        "Named after a connection, flow or webhook of the deployment.",
        "",
        "| variable | group | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{pattern}` | {group} | {_cell(text)} |" for pattern, group, text in VARIABLE_PATTERNS]
    lines += [
        "",
        "## Read by docker-compose.yml only",
        "",
        "Set in `.env` (`deploy/env.example`); the platform's code never reads them.",
        "",
        "| variable | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {_cell(text)} |" for name, text in COMPOSE_VARIABLES.items()]
    return "\n".join(lines).rstrip() + "\n"
