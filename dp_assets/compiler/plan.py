"""The plan of a flow: which nodes run, in which order, on which inputs, computed once at load.

One type for every planned flow. A flow's nodes and the body of a sub-chain (``TryCatch``,
``ForEach``) are both a ``FlowPlan`` of ``PlannedNode``s made by the same function
(``_planned_node``), and each of their nodes runs through the same call
(``dp_assets.compiler.runtime.call_node``). So a rule of planning or running a node (how its
params are rendered, secrets sealed and data templates kept inert, its retries and time limit,
the error that names flow and node) holds inside a body without code of its own. Only the wiring
differs: a flow's nodes name their inputs (``node.output``), a body's node takes the previous
body node's output unless it names one (``plan_body``).

Kept small and plain (tuples and dicts), because a code location holds one per flow and a run
worker only walks the plan of the flow it runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from graphlib import TopologicalSorter
from typing import Any

from dp_assets.catalog.base import Catalog, NodeType
from dp_assets.compiler.sub_chain_body import InvalidBody, SubChainParams, parse_body, same_shape
from dp_assets.spec.ephemeral import ephemeral_nodes
from dp_assets.spec.loading import split_ref
from dp_assets.spec.model import ColumnContract, FlowParam, NodeBase, RetrySpec
from dp_assets.spec.validation import ValidatedFlow, bound_inputs


@dataclass(frozen=True)
class PlannedNode:
    """A node as it runs: in a flow's step, or in a sub-chain's body (then never an asset)."""

    id: str
    node_type: NodeType
    raw_params: dict[str, Any]  # as the author wrote them: the run renders them (spec.templates)
    inputs: dict[str, str]  # input name -> "node.output" (in a body also BODY_INPUT)
    is_asset: bool
    retry: RetrySpec | None
    timeout_seconds: float | None
    on_error: str
    storage_format: str | None
    storage_table: str | None
    columns: tuple[ColumnContract, ...] = ()
    #: The node's ``checks:`` (dp_assets/spec/checks.py), evaluated after it ran (compiler.checks).
    checks: tuple[Any, ...] = ()
    #: Whether the node resolves ``${env:NAME}`` secret references: only then are the author's
    #: references sealed when its params are rendered.
    resolves_secrets: bool = False
    #: Whether the node fills ``{{ input }}``-style templates from data: then flow params are
    #: substituted inert (``dp_assets.spec.inert``).
    fills_data_templates: bool = False
    #: The params as validation checked them (flow params as typed stand-ins), for schema hooks.
    checked_params: Any = None
    #: A sub-chain's body, planned with the flow (``SubChainParams``).
    body: FlowPlan | None = None
    #: Not an asset, never stored: computed in the step of each node that reads it
    #: (``FlowPlan.ephemeral_chain``; dp_assets/spec/ephemeral.py decides which nodes are).
    ephemeral: bool = False
    #: What runs it: the node's ``engine``, else the flow's ``policies.engine``.
    engine: str = "pandas"
    #: ``(flow id, node id)`` of the other flows' nodes it reads (``NodeType.reads_flows``).
    reads_flows: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FlowPlan:
    """A flow's nodes in the order they run, or a sub-chain's body (``plan_body``)."""

    flow_id: str
    version: str
    params: dict[str, FlowParam]
    nodes: tuple[PlannedNode, ...]  # topological order
    resource_keys: frozenset[str]  # of every node, bodies included
    catalog: Catalog
    #: How many independent nodes of a step run at once (``policies.max_parallel_nodes``).
    max_parallel_nodes: int = 1

    @functools.cached_property
    def _by_id(self) -> dict[str, PlannedNode]:
        return {node.id: node for node in self.nodes}

    def node(self, node_id: str) -> PlannedNode:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"flow '{self.flow_id}' has no node '{node_id}'") from None

    def upstream_ids(self, node_id: str) -> list[str]:
        """The ids of the nodes ``node_id`` reads, once each, in the order of its inputs."""
        return list(dict.fromkeys(ref.partition(".")[0] for ref in self.node(node_id).inputs.values()))

    def ephemeral_chain(self, node_id: str) -> tuple[PlannedNode, ...]:
        """The ephemeral nodes ``node_id`` reads, directly or through other ephemeral nodes, in
        the order they run: what the step of a reader computes before it (an ephemeral node's
        own upstreams that are stored are read as any input is)."""
        found: set[str] = set()
        pending = self.upstream_ids(node_id)
        while pending:
            upstream = pending.pop()
            if upstream not in found and self.node(upstream).ephemeral:
                found.add(upstream)
                pending.extend(self.upstream_ids(upstream))
        return tuple(node for node in self.nodes if node.id in found)

    def stored_upstreams(self, node_id: str) -> list[str]:
        """The nearest upstreams of ``node_id`` that are not ephemeral (through ephemeral ones):
        its lineage in the UI, since an ephemeral node is no asset."""
        return list(self._stored_upstreams[node_id])

    def flows_read(self, node_id: str) -> list[tuple[str, str]]:
        """The other flows' nodes ``node_id`` reads, itself or through the ephemeral nodes it
        computes: dependencies of its asset on theirs (cross-flow lineage)."""
        chain = (*self.ephemeral_chain(node_id), self.node(node_id))
        return list(dict.fromkeys(ref for node in chain for ref in node.reads_flows))

    @functools.cached_property
    def _stored_upstreams(self) -> dict[str, tuple[str, ...]]:
        # Once per node, in topological order (an upstream's answer is known before its
        # readers'): walking ephemeral diamonds afresh per path is exponential in their depth.
        found: dict[str, tuple[str, ...]] = {}
        for node in self.nodes:
            nearest: dict[str, None] = {}
            for upstream in self.upstream_ids(node.id):
                ephemeral = upstream in self._by_id and self._by_id[upstream].ephemeral  # a body's input is none
                nearest.update(dict.fromkeys(found[upstream] if ephemeral else (upstream,)))
            found[node.id] = tuple(nearest)
        return found

    def steps(self, mode: str) -> list[tuple[str, frozenset[str]]]:
        """How nodes are grouped into Dagster steps: ``(step name, node ids)`` in order.

        ``flow``: one step for the whole flow (the default). ``node``: a step per asset node, so
        a multi-process or Celery executor can run independent nodes at the same time; a node
        that is not an asset runs in the step of its first upstream, and an ephemeral node in
        the step of each node that reads it. Step names differ from the job name (the flow id):
        Dagster wants op and job names distinct in a repository.
        """
        if mode == "flow":
            return [(f"{self.flow_id}__step", frozenset(n.id for n in self.nodes))]
        groups: dict[str, list[str]] = {}
        home: dict[str, str] = {}
        for node in self.nodes:
            if node.ephemeral:
                continue  # joins its readers' steps
            upstream = self.upstream_ids(node.id)
            step = (
                f"{self.flow_id}__node__{node.id}" if node.is_asset or not upstream else _home(self, upstream[0], home)
            )
            home[node.id] = step
            groups.setdefault(step, []).extend(n.id for n in self.ephemeral_chain(node.id))
            groups[step].append(node.id)
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


def _home(plan: FlowPlan, node_id: str, home: dict[str, str]) -> str:
    """The step a node that is no asset joins: its upstream's; an ephemeral upstream's is the
    step of its first stored upstream (a source has one: an ephemeral node has readers)."""
    while plan.node(node_id).ephemeral and node_id not in home:
        upstreams = plan.upstream_ids(node_id)
        if not upstreams:
            return f"{plan.flow_id}__node__{node_id}"
        node_id = upstreams[0]
    return home.get(node_id, f"{plan.flow_id}__node__{node_id}")


def build_plan(validated: ValidatedFlow, catalog: Catalog) -> FlowPlan:
    # Here, not at the top: a spec's sub-chains are planned when it is validated, without Dagster.
    from dp_assets.compiler.translator import output_format

    flow = validated.flow
    by_id = {node.id: node for node in flow.nodes}  # type: ignore[attr-defined]
    raw_by_id = {node["id"]: node for node in validated.raw["nodes"]}
    inputs = {node.id: bound_inputs(node, catalog[node.type]) for node in by_id.values()}
    graph = {node_id: {split_ref(ref)[0] for ref in refs.values()} for node_id, refs in inputs.items()}
    flow_params = dict(flow.params)
    ephemeral = ephemeral_nodes(flow, catalog)
    planned = []
    for node_id in TopologicalSorter(graph).static_order():
        node = by_id[node_id]
        planned.append(
            _planned_node(
                node,
                raw_by_id[node_id].get("params") or {},
                inputs[node_id],
                catalog,
                flow_id=flow.id,
                version=validated.version,
                flow_params=flow_params,
                default_retry=flow.policies.retry,
                is_asset=catalog[node.type].produces_asset and node_id not in ephemeral,
                ephemeral=node_id in ephemeral,
                engine=node.engine or flow.policies.engine,
                storage_format=output_format(flow, node),
                storage_table=node.storage.table if node.storage else None,
                columns=tuple(node.columns or ()),
                checks=tuple(node.checks),
            )
        )
    plan = _flow_plan(flow.id, validated.version, dict(flow.params), planned, catalog)
    return replace(plan, max_parallel_nodes=flow.policies.max_parallel_nodes or default_parallel_nodes())


def default_parallel_nodes() -> int:
    """Independent nodes of a step at once when the flow does not say: the machine's cores, at
    most 4 (the heavy work of pandas, pyarrow and DuckDB releases the GIL; more threads than
    cores only add memory)."""
    return max(1, min(4, os.cpu_count() or 1))


def plan_body(
    body: Sequence[Any],
    catalog: Catalog,
    *,
    raw: Any = None,
    flow_id: str = "",
    version: str = "",
    flow_params: dict[str, FlowParam] | None = None,
) -> FlowPlan:
    """A sub-chain's body as a plan; raises ``InvalidBody`` listing every problem.

    ``body`` is the body as validation checked it; ``raw`` the same body as the author wrote it
    (flow-param references not yet filled in), which the run renders node by node like a flow
    node's params; without ``raw``, ``body`` is taken as written.
    """
    parsed, errors = parse_body(body, catalog)
    raw = body if raw is None else raw
    if not errors and not same_shape(raw, body):
        errors = [("body", "a body is written out in the spec: a flow param cannot stand for a body node")]
    if errors:
        raise InvalidBody(errors)
    planned = [
        _planned_node(
            node,
            raw[index].get("params") or {},
            inputs,
            catalog,
            flow_id=flow_id,
            version=version,
            flow_params=flow_params or {},
            default_retry=None,
        )
        for index, (node, inputs) in enumerate(parsed)
    ]
    return _flow_plan(flow_id, version, dict(flow_params or {}), planned, catalog)


def _planned_node(
    node: NodeBase,
    raw_params: Any,
    inputs: dict[str, str],
    catalog: Catalog,
    *,
    flow_id: str,
    version: str,
    flow_params: dict[str, FlowParam],
    default_retry: RetrySpec | None,
    is_asset: bool = False,
    storage_format: str | None = None,
    storage_table: str | None = None,
    columns: tuple[ColumnContract, ...] = (),
    checks: tuple[Any, ...] = (),
    ephemeral: bool = False,
    engine: str = "pandas",
) -> PlannedNode:
    """A node as it runs; a body's node is no asset (nothing stored, no asset checks)."""
    node_type = catalog[node.type]  # type: ignore[attr-defined]  # each node model adds its type
    params = node.params  # type: ignore[attr-defined]
    body = None
    if isinstance(params, SubChainParams):
        raw_body = raw_params.get("body") if isinstance(raw_params, Mapping) else raw_params
        body = plan_body(params.body, catalog, raw=raw_body, flow_id=flow_id, version=version, flow_params=flow_params)
    return PlannedNode(
        id=node.id,
        node_type=node_type,
        raw_params=raw_params,
        inputs=inputs,
        is_asset=is_asset,
        retry=node.retry or default_retry,
        timeout_seconds=node.timeout_seconds,
        on_error=node.on_error,
        storage_format=storage_format,
        storage_table=storage_table,
        columns=columns,
        checks=checks,
        resolves_secrets="secrets" in node_type.resources,
        fills_data_templates=node_type.data_templates,
        checked_params=params,
        body=body,
        ephemeral=ephemeral,
        engine=engine,
        reads_flows=node_type.reads_flows(params) if node_type.reads_flows else (),
    )


def _flow_plan(
    flow_id: str, version: str, params: dict[str, FlowParam], nodes: list[PlannedNode], catalog: Catalog
) -> FlowPlan:
    resources: set[str] = set()
    for node in nodes:
        resources |= node.node_type.resources | (node.body.resource_keys if node.body else frozenset())
    return FlowPlan(flow_id, version, params, tuple(nodes), frozenset(resources), catalog)
