"""The node catalog: every node type a code location knows, built explicitly.

``default_catalog()`` lists the node modules and the types each defines in one place
(``NODE_MODULES``); a deployment can build its own ``Catalog`` (e.g.
``default_catalog().extended([...])``) and pass it to the compiler.

A module is imported when one of its types is first looked up, so checking or compiling a flow
imports the modules of the node types it uses, not all of them (issue 19: a fast code location).
``tests/nodes/test_completeness.py`` fails when ``NODE_MODULES`` and the modules disagree.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Iterable, Iterator, Mapping

from dp_assets.catalog.base import Catalog, NodeType

#: module -> the node types its ``NODE_TYPES`` defines
NODE_MODULES: dict[str, tuple[str, ...]] = {
    "dp_assets.catalog.nodes.sources_static": ("StaticData",),
    "dp_assets.catalog.nodes.sources": ("FileInput",),
    "dp_assets.catalog.nodes.sources_db": ("TableReader", "CustomSQLQuery"),
    "dp_assets.catalog.nodes.sources_api": ("ApiEndpoint", "WebhookListener"),
    "dp_assets.catalog.nodes.sources_flows": ("FlowInput",),
    "dp_assets.catalog.nodes.transforms": ("SelectColumns", "SortData", "GroupAggregate", "JoinMerge"),
    "dp_assets.catalog.nodes.expression_nodes": ("FilterRows", "AddModifyColumn"),
    "dp_assets.catalog.nodes.transforms_columns": ("RenameColumns", "ChangeDataType", "SplitColumn", "MapValues"),
    "dp_assets.catalog.nodes.transforms_rows": (
        "Limit",
        "SampleRows",
        "HandleMissingValues",
        "Deduplicate",
        "UnionConcatenate",
    ),
    "dp_assets.catalog.nodes.transforms_pivot": ("PivotTable",),
    "dp_assets.catalog.nodes.transforms_reshape": ("Melt", "WindowFunctions"),
    "dp_assets.catalog.nodes.sql_transform": ("SqlTransform",),
    "dp_assets.catalog.nodes.python_nodes": ("RunPythonScript", "ApplyFunction"),
    "dp_assets.catalog.nodes.sinks": ("FileWriter",),
    "dp_assets.catalog.nodes.sinks_db": ("TableWriter",),
    "dp_assets.catalog.nodes.sinks_api": ("APIRequest", "DisplayResults", "SendNotification"),
    "dp_assets.catalog.nodes.control": ("ConditionalBranch", "Merge"),
    "dp_assets.catalog.nodes.subchains": ("TryCatch", "ForEach"),
    "dp_assets.catalog.nodes.tools": ("HttpTool", "ShellTool", "PythonTool", "McpTool"),
    "dp_assets.catalog.nodes.agents": ("LlmAgent",),
}


class ModuleCatalog(Catalog):
    """A catalog over node modules, each imported when one of its types is first looked up.

    Iterating and ``in`` use the index alone; ``catalog[name]``, ``values()`` and ``items()``
    import what they return."""

    def __init__(self, modules: Mapping[str, Iterable[str]]):
        super().__init__(())
        self._module_of: dict[str, str] = {}
        for module, names in modules.items():
            for name in names:
                if name in self._module_of:
                    raise ValueError(f"node type '{name}' is listed twice in the catalog")
                self._module_of[name] = module
        self._lock = threading.Lock()  # a sub-chain's threads may look types up together

    def __getitem__(self, name: str) -> NodeType:
        found = self._types.get(name)
        if found is None:
            self._import(self._module_of[name])  # KeyError for a name not in the catalog
            found = self._types[name]
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._module_of

    def __iter__(self) -> Iterator[str]:
        return iter(self._module_of)

    def __len__(self) -> int:
        return len(self._module_of)

    def extended(self, node_types: Iterable[NodeType]) -> Catalog:
        return Catalog([*(self[name] for name in self), *node_types])

    def _import(self, module_name: str) -> None:
        with self._lock:
            if any(self._module_of[name] == module_name and name in self._types for name in self._module_of):
                return
            declared = {t.name: t for t in importlib.import_module(module_name).NODE_TYPES}
            listed = {name for name, module in self._module_of.items() if module == module_name}
            if set(declared) != listed:
                raise ValueError(
                    f"{module_name} defines node types {sorted(declared)} but the catalog lists "
                    f"{sorted(listed)} for it; update NODE_MODULES in dp_assets/catalog/__init__.py"
                )
            self._types.update(declared)


@functools.cache
def default_catalog() -> Catalog:
    return ModuleCatalog(NODE_MODULES)


__all__ = ["NODE_MODULES", "Catalog", "ModuleCatalog", "NodeType", "default_catalog"]
