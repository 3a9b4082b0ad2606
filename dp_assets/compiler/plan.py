"""The execution plan of one flow: what the step function needs, computed once at load.

Kept small and plain (tuples and dicts), because a code location holds one per flow and a run
worker only walks the plan of the flow it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from dp_assets.catalog.base import Catalog, NodeType
from dp_assets.spec.model import ColumnContract, FlowParam, RetrySpec
from dp_assets.spec.validation import ValidatedFlow, bound_inputs
from dp_assets.compiler.translator import output_format
from dp_assets.spec.loading import split_ref


@dataclass(frozen=True)
class PlannedNode:
    id: str
    node_type: NodeType
    raw_params: dict[str, Any]
    inputs: dict[str, str]  # input name -> "node.output"
    is_asset: bool
    retry: RetrySpec | None
    timeout_seconds: float | None
    on_error: str
    storage_format: str | None
    storage_table: str | None
    columns: tuple[ColumnContract, ...] = ()
    #: Whether the node (or a node of its body) resolves ``${env:NAME}`` secret references: only
    #: then are the author's references sealed when its params are rendered.
    resolves_secrets: bool = False
    #: Whether the node (or a node of its body) fills ``{{ input }}``-style templates from data:
    #: then flow params are substituted inert (``dp_assets.spec.inert``).
    fills_data_templates: bool = False


@dataclass(frozen=True)
class FlowPlan:
    flow_id: str
    version: str
    params: dict[str, FlowParam]
    nodes: tuple[PlannedNode, ...]  # topological order
    resource_keys: frozenset[str]
    catalog: Catalog

    def node(self, node_id: str) -> PlannedNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(f"flow '{self.flow_id}' has no node '{node_id}'")

    def steps(self, mode: str) -> list[tuple[str, frozenset[str]]]:
        """How nodes are grouped into Dagster steps: ``(step name, node ids)`` in order.

        ``flow``: one step for the whole flow (the default). ``node``: a step per asset node, so
        a multi-process or Celery executor can run independent nodes at the same time; a node
        that is not an asset runs in the step of its first upstream. Step names differ from the
        job name (the flow id): Dagster wants op and job names distinct in a repository.
        """
        if mode == "flow":
            return [(f"{self.flow_id}__step", frozenset(n.id for n in self.nodes))]
        groups: dict[str, list[str]] = {}
        home: dict[str, str] = {}
        for node in self.nodes:
            upstream = [ref.partition(".")[0] for ref in node.inputs.values()]
            if node.is_asset or not upstream:
                step = f"{self.flow_id}__node__{node.id}"
            else:
                step = home[upstream[0]]
            home[node.id] = step
            groups.setdefault(step, []).append(node.id)
        return [(name, frozenset(ids)) for name, ids in groups.items()]

    def resolve_params(self, given: dict[str, Any] | None) -> dict[str, Any]:
        """Run params: what the run gave, else the declared defaults."""
        given = given or {}
        unknown = set(given) - set(self.params)
        if unknown:
            raise ValueError(f"flow '{self.flow_id}' has no param(s) {', '.join(sorted(unknown))}")
        values = {}
        for name, param in self.params.items():
            if name in given and given[name] is not None:
                values[name] = given[name]
            elif param.required:
                raise ValueError(f"flow '{self.flow_id}': param '{name}' is required")
            else:
                values[name] = param.default
        return values


def build_plan(validated: ValidatedFlow, catalog: Catalog) -> FlowPlan:
    flow = validated.flow
    by_id = {node.id: node for node in flow.nodes}  # type: ignore[attr-defined]
    raw_by_id = {node["id"]: node for node in validated.raw["nodes"]}
    graph = {
        node.id: {split_ref(ref)[0] for ref in bound_inputs(node, catalog[node.type]).values()}
        for node in by_id.values()
    }
    planned = []
    resources: set[str] = set()
    for node_id in TopologicalSorter(graph).static_order():
        node = by_id[node_id]
        node_type = catalog[node.type]
        runs_types = [node_type]
        if hasattr(node.params, "body"):  # sub-chains (TryCatch, ForEach) run other node types
            from dp_assets.catalog.nodes.subchains import body_node_types

            runs_types += body_node_types(node.params, catalog)
        node_resources = frozenset().union(*(runs.resources for runs in runs_types))
        resources |= node_resources
        planned.append(
            PlannedNode(
                id=node.id,
                node_type=node_type,
                raw_params=raw_by_id[node_id].get("params") or {},
                inputs=bound_inputs(node, node_type),
                is_asset=node_type.produces_asset,
                retry=node.retry or flow.policies.retry,
                timeout_seconds=node.timeout_seconds,
                on_error=node.on_error,
                storage_format=output_format(flow, node),
                storage_table=node.storage.table if node.storage else None,
                columns=tuple(node.columns or ()),
                resolves_secrets="secrets" in node_resources,
                fills_data_templates=any(runs.data_templates for runs in runs_types),
            )
        )
    return FlowPlan(
        flow_id=flow.id,
        version=validated.version,
        params=dict(flow.params),
        nodes=tuple(planned),
        resource_keys=frozenset(resources),
        catalog=catalog,
    )
