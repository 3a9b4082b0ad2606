"""The checks of a flow's graph: node ids, each input's reference and the number of inputs a node
type takes, cycles; then column schemas propagated along the graph in topological order. A
sub-chain's body (``dp_assets.compiler.plan``) checks its inputs with :func:`arity_problems`."""

from __future__ import annotations

from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter
from typing import Any

from dp_assets.catalog.base import Catalog, ColumnSchema, SchemaError
from dp_assets.spec.loading import split_ref
from dp_assets.spec.model import FlowBase
from dp_assets.spec.model_errors import suggest
from dp_assets.spec.spec_errors import SpecError


def graph_errors(raw: Mapping[str, Any], flow_id: str, catalog: Catalog, errors: list[SpecError]) -> list[str] | None:
    """Check ids, inputs, arity and cycles on the raw spec; return a topological order if sound."""
    nodes = [n for n in raw.get("nodes") or [] if isinstance(n, Mapping)]
    seen: dict[str, Mapping[str, Any]] = {}
    sound = True
    for node in nodes:
        node_id = str(node.get("id"))
        if node.get("_dangling"):
            errors.append(SpecError(flow_id, node_id, "id", "an edge targets a node that does not exist"))
        elif node_id in seen:
            errors.append(SpecError(flow_id, node_id, "id", "duplicate node id; node ids must be unique"))
            sound = False
        seen.setdefault(node_id, node)
    graph: dict[str, set[str]] = {node_id: set() for node_id in seen}
    for node_id, node in seen.items():
        node_type = _node_type(catalog, node)
        inputs = node.get("inputs") or []
        if not isinstance(inputs, (list, Mapping)):
            sound = False  # the model names the wrong type
            continue
        refs = list(inputs.items()) if isinstance(inputs, Mapping) else list(enumerate(inputs))
        for name, ref in refs:
            field = f"inputs.{name}" if isinstance(inputs, Mapping) else f"inputs[{name}]"
            if not isinstance(ref, str):
                errors.append(SpecError(flow_id, node_id, field, "an input must be a node id string"))
                sound = False
                continue
            source, output = split_ref(ref)
            if source not in seen:
                errors.append(
                    SpecError(
                        flow_id, node_id, field, f"input '{ref}' names no node of this flow{suggest(source, seen)}"
                    )
                )
                sound = False
                continue
            source_type = _node_type(catalog, seen[source])
            if source_type is not None and output not in source_type.outputs:
                errors.append(
                    SpecError(
                        flow_id,
                        node_id,
                        field,
                        f"node '{source}' ({source_type.name}) has no output '{output}'; "
                        f"its outputs: {', '.join(source_type.outputs)}",
                    )
                )
            graph[node_id].add(source)
        if node_type is not None:
            _arity_errors(flow_id, node_id, node_type, inputs, errors)
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = exc.args[1]
        path = " -> ".join(reversed(cycle))
        first = cycle[0]
        errors.append(SpecError(flow_id, first, "inputs", f"cycle: {path}"))
        return None
    return order if sound else None


def _node_type(catalog: Catalog, node: Mapping[str, Any]) -> Any:
    kind = node.get("type")
    return catalog.get(kind) if isinstance(kind, str) else None


def _arity_errors(flow_id: str, node_id: str, node_type: Any, inputs: Any, errors: list[SpecError]) -> None:
    spec = node_type.inputs
    count = len(inputs)
    if spec.variadic:
        if count < spec.min_count:
            errors.append(
                SpecError(flow_id, node_id, "inputs", f"{node_type.name} takes {spec.describe()}, got {count}")
            )
        return
    if isinstance(inputs, Mapping):
        names = {str(name) for name in inputs}
        if names != set(spec.names):
            errors.append(
                SpecError(
                    flow_id,
                    node_id,
                    "inputs",
                    f"{node_type.name} takes inputs named {spec.describe() or '(none)'}, "
                    f"got {', '.join(sorted(names)) or 'none'}",
                )
            )
    elif count != len(spec.names):
        errors.append(
            SpecError(
                flow_id,
                node_id,
                "inputs",
                f"{node_type.name} takes {len(spec.names)} input(s) ({spec.describe()}), got {count}",
            )
        )


def schema_errors(
    flow: FlowBase,
    order: list[str],
    catalog: Catalog,
    errors: list[SpecError],
    broken: set[str],
    known: Mapping[str, ColumnSchema] | None = None,
) -> dict[str, ColumnSchema | None]:
    """Propagate column schemas in topological order; a hook's ``SchemaError`` names the edge.
    ``known``: the output columns of nodes whose own hook cannot tell them (read from a source's
    files by ``dp validate --infer-columns``)."""
    by_id = {node.id: node for node in flow.nodes}  # type: ignore[attr-defined]
    schemas: dict[str, ColumnSchema | None] = {}
    for node_id in order:
        node = by_id[node_id]
        node_type = catalog[node.type]
        named = bound_inputs(node, node_type)
        input_schemas = {name: schemas.get(ref) for name, ref in named.items()}
        result = None
        if node_type.infer_schema is not None and node_id not in broken:
            try:
                result = node_type.infer_schema(node.params, input_schemas)
            except SchemaError as exc:
                edges = ", ".join(f"'{ref}' -> '{node_id}'" for ref in named.values())
                where = f" (input {edges})" if edges else ""
                errors.append(SpecError(flow.id, node_id, f"params.{exc.field}", exc.message + where))
            except Exception as exc:  # noqa: BLE001 - an inference bug names the node, not a traceback
                errors.append(
                    SpecError(
                        flow.id, node_id, "params", f"column schema could not be inferred ({type(exc).__name__}: {exc})"
                    )
                )
        if result is None and known and node_id not in broken:
            result = known.get(node_id)
        for output in node_type.outputs:
            schemas[f"{node_id}.{output}"] = result
    return {key.removesuffix(".result"): value for key, value in schemas.items()}


def bound_inputs(node: Any, node_type: Any) -> dict[str, str]:
    """Input name -> upstream reference ``node.output`` (positional lists bound to the names)."""
    inputs = node.inputs
    if isinstance(inputs, Mapping):
        items = list(inputs.items())
    elif node_type.inputs.variadic:
        items = [(ref, ref) for ref in inputs]
    else:
        # More inputs than names is reported by the validation, not here: extra ones drop out.
        items = list(zip(node_type.inputs.names, inputs, strict=False))
    return {name: "{}.{}".format(*split_ref(ref)) for name, ref in items}


def arity_problems(node_type: Any, inputs: Any) -> list[tuple[str, str]]:
    """``(field, message)`` for each way ``inputs`` do not fit what ``node_type`` takes."""
    errors: list[SpecError] = []
    _arity_errors("", "", node_type, inputs, errors)
    return [(error.field, error.message) for error in errors]
