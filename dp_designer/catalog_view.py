"""The catalog as the designer's palette needs it: node types grouped, each with the JSON Schema
of its pydantic params model (the forms are generated from it), its generated docs and an example."""

from __future__ import annotations

import functools
from typing import Any

from dp_assets.catalog.base import Catalog, NodeType
from dp_assets.catalog.examples import NODE_EXAMPLES
from dp_assets.docs_gen import params_table
from dp_assets.spec.model import flow_json_schema

#: Palette groups in the order shown; agents are tools (category ``tool``) in the catalog.
GROUPS = (
    ("source", "Sources"),
    ("transform", "Transforms"),
    ("sink", "Sinks"),
    ("control", "Control"),
    ("tool", "Tools and agents"),
)


def node_type_view(node_type: NodeType) -> dict[str, Any]:
    docs = "\n".join([node_type.description, "", *params_table(node_type.params_model)]).strip()
    return {
        "name": node_type.name,
        "category": node_type.category,
        "description": node_type.description,
        "docs": docs,
        "inputs": {
            "names": list(node_type.inputs.names),
            "variadic": node_type.inputs.variadic,
            "min_count": node_type.inputs.min_count,
        },
        "outputs": list(node_type.outputs),
        "side_effects": node_type.side_effects,
        "params_schema": node_type.params_model.model_json_schema(),
        "example": NODE_EXAMPLES.get(node_type.name),
    }


@functools.cache
def catalog_view(catalog: Catalog) -> dict[str, Any]:
    """Computed once per catalog (the schemas do not change while the server runs)."""
    views = [node_type_view(t) for t in catalog.values()]
    known = {key for key, _ in GROUPS}
    groups = [
        {"name": key, "label": label, "types": [v for v in views if v["category"] == key]} for key, label in GROUPS
    ]
    others = [v for v in views if v["category"] not in known]
    if others:
        groups.append({"name": "other", "label": "Other", "types": others})
    return {"groups": [g for g in groups if g["types"]], "flow_schema": flow_json_schema(catalog)}
