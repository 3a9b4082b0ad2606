"""The node catalog: every node type a code location knows, built explicitly.

``default_catalog()`` lists the node modules in one place; a deployment can build its own
``Catalog`` (e.g. ``default_catalog().extended([...])``) and pass it to the compiler.
"""

from __future__ import annotations

import functools
import importlib

from dp_assets.catalog.base import Catalog, NodeType

NODE_MODULES = (
    "dp_assets.catalog.nodes.sources",
    "dp_assets.catalog.nodes.sources_db",
    "dp_assets.catalog.nodes.sources_api",
    "dp_assets.catalog.nodes.transforms",
    "dp_assets.catalog.nodes.expression_nodes",
    "dp_assets.catalog.nodes.transforms_columns",
    "dp_assets.catalog.nodes.transforms_rows",
    "dp_assets.catalog.nodes.transforms_pivot",
    "dp_assets.catalog.nodes.transforms_reshape",
    "dp_assets.catalog.nodes.sql_transform",
    "dp_assets.catalog.nodes.python_nodes",
    "dp_assets.catalog.nodes.sinks",
    "dp_assets.catalog.nodes.sinks_db",
    "dp_assets.catalog.nodes.sinks_api",
    "dp_assets.catalog.nodes.control",
    "dp_assets.catalog.nodes.subchains",
    "dp_assets.catalog.nodes.tools",
    "dp_assets.catalog.nodes.agents",
)


@functools.cache
def default_catalog() -> Catalog:
    node_types: list[NodeType] = []
    for module_name in NODE_MODULES:
        node_types.extend(importlib.import_module(module_name).NODE_TYPES)
    return Catalog(node_types)


__all__ = ["Catalog", "NodeType", "default_catalog"]
