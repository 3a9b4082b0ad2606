"""A flow spec rewritten for one test case: fixtures and stand-ins in place of the real nodes.

The rewrite works on the canonical raw spec (edges already folded into inputs), so what runs is
the flow as published with only the named nodes swapped: a fixture node keeps the node's id and
inputs but gives the case's data; a stand-in keeps id and inputs and passes its input through.
Nodes inside a sub-chain ``body`` (``TryCatch``, ``ForEach``) are addressed as ``parent.child``.

Triggers, notifications, retention and run-level policies are left out: a test runs the data
path once, in process, and must not register sensors or wait for run timeouts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dp_assets.catalog.base import Catalog
from dp_assets.flowtest.harness import FIXTURE_TYPE, STAND_IN_TYPE
from dp_assets.flowtest.model import TestCase

# Sinks that are stand-ins unless the case says `real: true`.
DEFAULT_STAND_INS = frozenset({"APIRequest", "SendNotification", "TableWriter"})
# Side-effecting types that are safe in a test: FileWriter writes under the test's own data root.
ISOLATED = frozenset({"FileWriter"})
KEPT_POLICIES = ("retry", "steps")


class CaseError(ValueError):
    """The case does not fit the flow (unknown node, a side effect left unhandled)."""


@dataclass
class Rewritten:
    spec: dict[str, Any]
    top_level: frozenset[str]
    stand_ins: list[str] = field(default_factory=list)
    real: list[str] = field(default_factory=list)


def _walk(nodes: list[Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any], list[Any], int]]:
    """Every node (and body node) as ``(path, node, containing list, index)``."""
    for index, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("id"), str):
            continue
        path = f"{prefix}{node['id']}"
        yield path, node, nodes, index
        body = (node.get("params") or {}).get("body")
        if isinstance(body, list):
            yield from _walk(body, f"{path}.")


def _replacement(node: dict[str, Any], type_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The node with another type and params; inputs, retry, timeout, on_error and columns are
    kept, so a failing fixture exercises the flow's own resilience policies."""
    kept = {k: copy.deepcopy(v) for k, v in node.items() if k not in ("type", "params")}
    return {**kept, "type": type_name, "params": params}


def rewrite_for_case(raw: Mapping[str, Any], case: TestCase, catalog: Catalog) -> Rewritten:
    """The spec to compile for ``case``; raises ``CaseError`` naming what does not fit."""
    spec = copy.deepcopy(dict(raw))
    flow_id = spec.get("id")
    for key in ("triggers", "notify", "retention"):
        spec.pop(key, None)
    policies = spec.get("policies") or {}
    spec["policies"] = {k: v for k, v in policies.items() if k in KEPT_POLICIES}
    top_level = frozenset(n["id"] for n in spec.get("nodes", []) if isinstance(n, dict) and "id" in n)

    paths = {path for path, *_ in _walk(spec.get("nodes", []))}
    problems = [f"fixtures: flow '{flow_id}' has no node '{p}'" for p in case.fixtures if p not in paths]
    problems += [f"sinks: flow '{flow_id}' has no node '{p}'" for p in case.sinks if p not in paths]
    problems += [f"sinks: '{p}' has a fixture too; give one or the other" for p in case.sinks if p in case.fixtures]
    for target in case.expect:
        node_id = target.split(".", 1)[0]
        if node_id not in top_level:
            problems.append(f"expect: flow '{flow_id}' has no node '{node_id}' (expectations name top-level nodes)")
    if problems:
        raise CaseError("; ".join(problems))

    result = Rewritten(spec=spec, top_level=top_level)
    unhandled: list[str] = []
    # Replace from the deepest paths up, so a body's replacement sees its parent still in place.
    for path, node, siblings, index in sorted(_walk(spec["nodes"]), key=lambda item: -item[0].count(".")):
        type_name = node.get("type")
        if path in case.fixtures:
            siblings[index] = _replacement(node, FIXTURE_TYPE, {"key": path})
            continue
        node_type = catalog.get(type_name) if isinstance(type_name, str) else None
        if node_type is None:
            continue  # validation of the original spec reports it
        setting = case.sinks.get(path)
        if setting is not None and setting.real:
            result.real.append(path)
            continue
        if setting is not None or type_name in DEFAULT_STAND_INS:
            params = {"key": path, "type": type_name, "params": copy.deepcopy(node.get("params") or {})}
            siblings[index] = _replacement(node, STAND_IN_TYPE, params)
            result.stand_ins.append(path)
            continue
        if node_type.side_effects and type_name not in ISOLATED:
            unhandled.append(f"'{path}' ({type_name})")
    if unhandled:
        raise CaseError(
            f"node(s) {', '.join(sorted(unhandled))} reach outside the flow: give each a fixture, "
            "or list it under `sinks:` with `real: true` (run it) or `real: false` (a stand-in)"
        )
    return result
