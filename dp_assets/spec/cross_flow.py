"""Checks of the nodes that read other flows' nodes (``FlowInput``), across the flows of a location.

A flow alone cannot tell whether the flow it reads exists: the code location can, once it has
every flow. A reference to a flow it does not have, to a node that flow does not store, or flows
that read each other (directly or through others: their steps would wait on each other) leave the
reading flow out with an error naming flow, node and field; a flow that reads a flow left out is
left out too. Every other flow loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter


@dataclass(frozen=True)
class FlowRead:
    """Node ``node`` of a flow reads node ``upstream_node`` of flow ``upstream_flow``."""

    node: str
    upstream_flow: str
    upstream_node: str


def cross_flow_problems(
    stored_nodes: Mapping[str, frozenset[str]],
    reads: Mapping[str, Iterable[FlowRead]],
) -> dict[str, str]:
    """Flow id -> why it cannot load, for the flows whose reads of other flows fail.

    ``stored_nodes``: every flow of the location -> the ids of its nodes that are assets (kept
    per run, so another flow can read them); ``reads``: flow id -> what its nodes read."""
    problems: dict[str, str] = {}
    by_flow = {flow: tuple(found) for flow, found in reads.items()}
    by_flow = {flow: found for flow, found in by_flow.items() if found}
    for flow, found in by_flow.items():
        errors = [_missing(flow, read, stored_nodes) for read in found]
        if any(errors):
            problems[flow] = "; ".join(e for e in errors if e)
    problems.update(_cycles({f: r for f, r in by_flow.items() if f not in problems}))
    changed = True
    while changed:  # a flow that reads a flow left out cannot load either
        changed = False
        for flow, found in by_flow.items():
            if flow in problems:
                continue
            gone = next((read for read in found if read.upstream_flow in problems), None)
            if gone is not None:
                problems[flow] = (
                    f"flow '{flow}', node '{gone.node}', field 'params.flow': it reads flow "
                    f"'{gone.upstream_flow}', which did not load (see that flow's problem)"
                )
                changed = True
    return problems


def _missing(flow: str, read: FlowRead, stored_nodes: Mapping[str, frozenset[str]]) -> str | None:
    where = f"flow '{flow}', node '{read.node}'"
    if read.upstream_flow not in stored_nodes:
        return (
            f"{where}, field 'params.flow': there is no flow '{read.upstream_flow}' in this location "
            "(publish it, or correct the id)"
        )
    if read.upstream_node not in stored_nodes[read.upstream_flow]:
        kept = ", ".join(sorted(stored_nodes[read.upstream_flow])) or "none"
        return (
            f"{where}, field 'params.node': flow '{read.upstream_flow}' has no stored node "
            f"'{read.upstream_node}' (its stored nodes: {kept}; an ephemeral node or a "
            "notification is never stored, and a node kept in a table is read with TableReader)"
        )
    return None


def _cycles(reads: Mapping[str, tuple[FlowRead, ...]]) -> dict[str, str]:
    """Each flow on a cycle of flows reading flows -> the cycle, printed."""
    graph = {flow: {read.upstream_flow for read in found} for flow, found in reads.items()}
    problems: dict[str, str] = {}
    while True:
        try:
            TopologicalSorter(graph).prepare()
            return problems
        except CycleError as exc:
            # [a, b, ..., a], each a predecessor of the next: b reads a
            cycle: list[str] = list(reversed(exc.args[1]))
            path = " reads ".join(f"'{flow}'" for flow in cycle)
            for index, flow in enumerate(cycle[:-1]):
                upstream = cycle[index + 1]
                node = next(r.node for r in reads[flow] if r.upstream_flow == upstream)
                what = "reads itself (use the node's id in inputs)" if len(cycle) == 2 else f"is on a cycle: {path}"
                problems[flow] = (
                    f"flow '{flow}', node '{node}', field 'params.flow': the flow {what}; a flow cannot "
                    "read, directly or through others, a flow that reads it"
                )
                graph.pop(flow, None)
            for upstreams in graph.values():
                upstreams.difference_update(cycle)
