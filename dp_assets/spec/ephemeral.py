"""Which nodes of a flow are ephemeral: not assets, never stored, computed by their readers.

A node is ephemeral when it says ``ephemeral: true``, or when the flow says
``policies.ephemeral: intermediate`` and the node is an intermediate one: it produces data, has
no side effects, is read by another node, is not a leaf, declares no ``columns`` (checks need
a stored asset) and no ``storage``. With ``policies.steps: node`` a node read by more than one
node stays stored under ``intermediate``, since each reader's step would compute it again.

Decided once, here, for validation (``problems``), the planner and the translator alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dp_assets.catalog.base import Catalog
from dp_assets.spec.loading import split_ref


def readers(flow: Any) -> dict[str, set[str]]:
    """Node id -> the ids of the nodes that read one of its outputs."""
    found: dict[str, set[str]] = {node.id: set() for node in flow.nodes}
    for node in flow.nodes:
        refs = node.inputs.values() if isinstance(node.inputs, Mapping) else node.inputs
        for ref in refs:
            found.setdefault(split_ref(ref)[0], set()).add(node.id)
    return found


def ephemeral_nodes(flow: Any, catalog: Catalog) -> frozenset[str]:
    """The ids of the flow's ephemeral nodes (a valid flow: ``problems`` found nothing)."""
    read_by = readers(flow)
    intermediate = flow.policies.ephemeral == "intermediate"
    per_node_steps = flow.policies.steps == "node"
    chosen = set()
    for node in flow.nodes:
        read_once = not (per_node_steps and len(read_by[node.id]) > 1)
        if node.ephemeral or (
            intermediate and node.storage is None and read_once and _can_be_ephemeral(node, catalog, read_by[node.id])
        ):
            chosen.add(node.id)
    return frozenset(chosen)


def _can_be_ephemeral(node: Any, catalog: Catalog, read_by: set[str]) -> bool:
    node_type = catalog[node.type]
    return bool(read_by) and node_type.produces_asset and not node_type.side_effects and not _wants_asset(node)


def problems(flow: Any, catalog: Catalog) -> Iterator[tuple[str, str, str]]:
    """``(node id, field, message)`` for each node that says ``ephemeral: true`` but cannot be."""
    read_by = readers(flow)
    for node in flow.nodes:
        if not node.ephemeral or node.type not in catalog:
            continue
        node_type = catalog[node.type]
        if not node_type.produces_asset or node_type.side_effects:
            yield node.id, "ephemeral", f"a {node_type.name} node acts on the world; only data nodes can be ephemeral"
        elif not read_by.get(node.id):
            yield node.id, "ephemeral", "no node reads it, so nothing would compute it; remove ephemeral"
        elif node.columns:
            yield node.id, "columns", "declared columns are checked on a stored asset; remove them or ephemeral"
        elif node.storage is not None:
            yield node.id, "storage", "an ephemeral node is never stored; remove storage or ephemeral"


def _wants_asset(node: Any) -> bool:
    """Declared columns and checks are checked on a stored asset; automation materialises one."""
    return bool(node.columns or node.checks) or node.automation is not None
