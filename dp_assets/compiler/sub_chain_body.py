"""A sub-chain's body as written (``TryCatch``, ``ForEach``): its nodes parsed and checked one by
one as a flow's nodes are, each bound to its input (the previous body node's output unless it
names one). :func:`dp_assets.compiler.plan.plan_body` plans what this accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, ValidationError

from dp_assets.catalog.base import Catalog, NodeType, Params
from dp_assets.spec.model import NodeBase, node_model
from dp_assets.spec.validation import arity_problems, node_error

#: How a body node names the sub-chain's own input.
BODY_INPUT = "input"


class SubChainParams(Params):
    """Params of a node type that runs a sub-chain: its ``body`` is planned with the flow, and the
    node finds the plan in its context (``NodeContext.body``)."""

    body: list[dict[str, Any]] = Field(min_length=1, description="Node specs run in order on the input.")


class InvalidBody(ValueError):
    """A body that cannot be planned; ``errors`` are ``(field, message)`` like a check hook's."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))
        self.errors = errors


def body_errors(body: Sequence[Any], catalog: Catalog) -> list[tuple[str, str]]:
    """Every ``(field, message)`` problem of a body, fields as ``body[2].params.x``."""
    return parse_body(body, catalog)[1]


def same_shape(raw: Any, body: Sequence[Any]) -> bool:
    """Whether the written body lists its nodes (the checked one has flow params filled in)."""
    return isinstance(raw, list) and len(raw) == len(body) and all(isinstance(item, Mapping) for item in raw)


def parse_body(
    body: Sequence[Any], catalog: Catalog
) -> tuple[list[tuple[NodeBase, dict[str, str]]], list[tuple[str, str]]]:
    """The body's nodes, each checked as a flow's node is and bound to its inputs, and every
    ``(field, message)`` problem found. Messages are the validator's own."""
    nodes: list[tuple[NodeBase, dict[str, str]]] = []
    errors: list[tuple[str, str]] = []
    outputs: dict[str, tuple[str, ...]] = {}
    previous = BODY_INPUT
    if not body:
        errors.append(("body", "the body needs at least one node"))
    for index, item in enumerate(body):
        where = f"body[{index}]"
        if not isinstance(item, Mapping):
            errors.append((where, "a body node must be a mapping like a flow node"))
            continue
        type_name = item.get("type")
        if not isinstance(type_name, str) or type_name not in catalog:
            kind = "union_tag_not_found" if type_name is None else "union_tag_invalid"
            field, message = node_error({"type": kind, "loc": ("type",), "ctx": {"tag": type_name}}, catalog)
            errors.append((f"{where}.{field}", message))
            continue
        try:
            node = node_model(catalog, type_name).model_validate(dict(item))
        except ValidationError as exc:
            errors += [
                (f"{where}.{field}", message) for field, message in (node_error(err, catalog) for err in exc.errors())
            ]
            continue
        node_type = catalog[type_name]
        if node.id in outputs:
            errors.append((f"{where}.id", f"duplicate body node id '{node.id}'"))
            continue
        inputs, problems = _bind(node, node_type, previous, outputs)
        problems += arity_problems(node_type, node.inputs or inputs)
        errors += [(f"{where}.{field}", message) for field, message in problems]
        if node_type.check is not None:
            errors += [(f"{where}.params.{f}", m) for f, m in node_type.check(node.params, catalog)]  # type: ignore[attr-defined]
        outputs[node.id] = node_type.outputs
        nodes.append((node, inputs))
        previous = f"{node.id}.{node_type.outputs[0]}"
    return nodes, errors


def _bind(
    node: NodeBase, node_type: NodeType, previous: str, outputs: dict[str, tuple[str, ...]]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Input name -> reference, and the problems: an unnamed input is the previous body node's
    output; ``id`` names an earlier body node's first output, ``id.output`` another one."""
    written = node.inputs
    if not written:
        if node_type.inputs.variadic:
            return {previous: previous}, []
        return ({node_type.inputs.names[0]: previous} if node_type.inputs.names else {}), []
    if isinstance(written, Mapping):
        items = list(written.items())
    elif node_type.inputs.variadic:
        items = [(ref, ref) for ref in written]
    else:
        items = list(zip(node_type.inputs.names, written, strict=False))  # a count that differs: arity_problems
    inputs, problems = {}, []
    for name, ref in items:
        source, _, output = ref.partition(".")
        if ref == BODY_INPUT:
            inputs[name] = ref
        elif source not in outputs:
            problems.append(
                ("inputs", f"input '{ref}' names no earlier body node (or '{BODY_INPUT}' for the outer input)")
            )
        elif output and output not in outputs[source]:
            problems.append(("inputs", f"body node '{source}' has no output '{output}'"))
        else:
            inputs[name] = f"{source}.{output or outputs[source][0]}"
    return inputs, problems
