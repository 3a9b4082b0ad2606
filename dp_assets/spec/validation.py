"""Validation of a flow spec: every error in one pass, each naming the flow, node and field.

Three layers, all run even when an earlier one found errors, so a user fixes a spec in one round:
the pydantic model (types, unknown keys, params of each node type), the graph (ids, inputs,
arity, cycles, ``{{ params.x }}`` references), and column schemas propagated before any run.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any, Protocol

from pydantic import ValidationError

from dp_assets.catalog.base import Catalog, ColumnSchema, SchemaError
from dp_assets.spec import checks, dagster_rules, ephemeral, templates
from dp_assets.spec.document import MAX_VALUES, SpecShapeError, count_values, dotted
from dp_assets.spec.loading import normalise_spec, spec_version, split_ref
from dp_assets.spec.model import FlowBase, FlowParam, flow_model


class ValidatedRecords(Protocol):
    """Where versions that passed are recorded (``spec.validated_cache.ValidatedSpecs``)."""

    def compiled(self, flow_id: str, version: str) -> bool: ...

    def put(self, validated: ValidatedFlow, checked: Mapping[str, Any], *, compiles: bool) -> None: ...


PLACEHOLDERS = {
    "string": "",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "date": "1970-01-01",
    "datetime": "1970-01-01T00:00:00",
    "list": [],
    "object": {},
}


@dataclass(frozen=True)
class SpecError:
    flow: str
    node: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"flow '{self.flow}'"
        if self.node is not None:
            where += f", node '{self.node}'"
        return f"{where}, field '{self.field}': {self.message}"


class FlowValidationError(ValueError):
    def __init__(self, flow_id: str, errors: list[SpecError]):
        self.flow_id = flow_id
        self.errors = errors
        super().__init__(
            f"flow '{flow_id}' is invalid ({len(errors)} error(s)):\n" + "\n".join(f"  - {e}" for e in errors)
        )


@dataclass(frozen=True)
class ValidatedFlow:
    """A flow that passed validation: the model, the canonical raw spec, and its version."""

    flow: FlowBase
    raw: dict[str, Any]
    version: str
    schemas: Mapping[str, ColumnSchema | None]

    @property
    def id(self) -> str:
        return self.flow.id


def validate_spec(
    data: Mapping[str, Any],
    catalog: Catalog,
    *,
    check_schemas: bool = True,
    check_compiles: bool = True,
    cache: ValidatedRecords | None = None,
) -> ValidatedFlow:
    """Validate a spec; raise ``FlowValidationError`` listing every problem found.

    ``check_schemas=False`` skips column-schema propagation: the code location re-validates
    stored specs on every load and they were schema-checked when published.
    ``check_compiles=False`` skips compiling the flow to prove Dagster takes it, for a caller
    that compiles it next anyway (the code location reports that failure per flow).
    ``cache``: where a version that passed is recorded; a version recorded as compiled is not
    compiled again (nor Dagster imported for it), every other check runs (``spec.validated_cache``).

    Total: any JSON-like ``data`` gives a ``ValidatedFlow`` or a ``FlowValidationError`` (a
    document beyond the limits of ``spec.document`` too), and what it accepts compiles
    (``spec.dagster_rules``).
    """
    try:
        raw = normalise_spec(data)
    except SpecShapeError as exc:
        flow_id = exc.flow or _flow_id_of(data)
        raise FlowValidationError(flow_id, [SpecError(flow_id, exc.node, exc.field, exc.message)]) from None
    flow_id = _flow_id_of(raw)
    errors: list[SpecError] = []
    params = _flow_params(raw, flow_id, errors)
    checked = _with_placeholders(raw, params, flow_id, errors)
    flow = None
    try:
        flow = flow_model(catalog, types_used(checked, catalog)).model_validate(checked)
    except ValidationError as exc:
        errors.extend(_pydantic_errors(exc, raw, flow_id, catalog))
    except Exception as exc:  # noqa: BLE001 - a validator's own bug must name the flow, not crash a load
        errors.append(SpecError(flow_id, None, "<spec>", f"could not be checked ({type(exc).__name__}: {exc})"))
    if flow is not None:
        for node in flow.nodes:  # type: ignore[attr-defined]
            errors.extend(_hook_errors(flow_id, node, catalog))
    order = _graph_errors(raw, flow_id, catalog, errors)
    schemas: dict[str, ColumnSchema | None] = {}
    if check_schemas and flow is not None and order is not None:
        broken = {e.node for e in errors if e.node is not None}
        schemas = _schema_errors(flow, order, catalog, errors, broken)
    if flow is not None:
        errors.extend(_partition_errors(flow, raw))
        errors.extend(
            SpecError(flow.id, node, field, message)
            for node, field, message in dagster_rules.problems(flow, launch_model=check_compiles)
        )
        errors.extend(SpecError(flow.id, *problem) for problem in ephemeral.problems(flow, catalog))
        stored = _stored_nodes(flow, catalog) if order is not None else None
        errors.extend(SpecError(flow.id, *problem) for problem in checks.problems(flow, schemas, stored))
    if errors or flow is None:
        raise FlowValidationError(flow_id, _dedupe(errors))
    validated = ValidatedFlow(flow=flow, raw=raw, version=spec_version(raw), schemas=schemas)
    compiled_before = check_compiles and cache is not None and cache.compiled(validated.id, validated.version)
    if check_compiles and not compiled_before and (refusal := dagster_rules.compile_refusal(validated, catalog)):
        raise FlowValidationError(flow_id, [SpecError(flow.id, None, "<spec>", refusal)])
    if cache is not None and not compiled_before:
        cache.put(validated, checked, compiles=check_compiles)
    return validated


def types_used(spec: Mapping[str, Any], catalog: Catalog) -> frozenset[str]:
    """The catalog's node types a spec names (a type it does not know is reported by the model)."""
    nodes = spec.get("nodes")
    if not isinstance(nodes, list):
        return frozenset()
    named = (node.get("type") for node in nodes if isinstance(node, Mapping))
    return frozenset(name for name in named if isinstance(name, str) and name in catalog)


def _partition_errors(flow: Any, raw: Mapping[str, Any]) -> list[SpecError]:
    """``{{ partition.* }}`` only in a partitioned flow (start and end: time windows), and only
    triggers that know which partition to launch."""
    spec = flow.partitions
    errors = []
    for node in raw.get("nodes") or []:
        for path, name in templates.partition_references(node.get("params"), "params"):
            if spec is None:
                errors.append(SpecError(flow.id, node.get("id"), path, f"'{name}' needs 'partitions:' on the flow"))
            elif name != "partition.key" and spec.type != "time":
                errors.append(SpecError(flow.id, node.get("id"), path, f"'{name}' needs time partitions"))
    if spec is not None:
        if flow.policies.output_format == "table" or any(
            node.storage is not None and node.storage.format == "table" for node in flow.nodes
        ):
            errors.append(
                SpecError(flow.id, None, "partitions", "a partitioned flow keeps outputs per run, not in tables")
            )
        for index, trigger in enumerate(flow.triggers):
            if trigger.type != "schedule":
                errors.append(
                    SpecError(
                        flow.id,
                        None,
                        f"triggers[{index}]",
                        f"a {trigger.type} trigger cannot launch a partitioned flow (it names no "
                        "partition); use a schedule, or `dp backfill`",
                    )
                )
            elif spec.type == "dynamic":
                errors.append(
                    SpecError(
                        flow.id,
                        None,
                        f"triggers[{index}]",
                        "a schedule cannot choose among dynamic partitions; use time or static partitions",
                    )
                )
    return errors


def _stored_nodes(flow: Any, catalog: Catalog) -> frozenset[str]:
    """The nodes that are stored assets: they produce data and are not ephemeral."""
    transient = ephemeral.ephemeral_nodes(flow, catalog)
    return frozenset(n.id for n in flow.nodes if catalog[n.type].produces_asset and n.id not in transient)


def _flow_id_of(data: Any) -> str:
    """The id errors name the flow by: the spec's own, else ``<no id>``."""
    flow_id = data.get("id") if isinstance(data, Mapping) else None
    return flow_id if isinstance(flow_id, str) and flow_id else "<no id>"


def _hook_errors(flow_id: str, node: Any, catalog: Catalog) -> list[SpecError]:
    """A node type's own ``check``; should it raise, the error still names the node."""
    hook = catalog[node.type].check
    if hook is None:
        return []
    try:
        problems = hook(node.params, catalog)
        return [SpecError(flow_id, node.id, f"params.{field}", message) for field, message in problems]
    except Exception as exc:  # noqa: BLE001 - a hook's bug must not stop the other flows loading
        return [SpecError(flow_id, node.id, "params", f"could not be checked ({type(exc).__name__}: {exc})")]


def _dedupe(errors: list[SpecError]) -> list[SpecError]:
    return list(dict.fromkeys(errors))


def _flow_params(raw: Mapping[str, Any], flow_id: str, errors: list[SpecError]) -> dict[str, FlowParam]:
    params: dict[str, FlowParam] = {}
    declared = raw.get("params") or {}
    if not isinstance(declared, Mapping):
        return params  # the model reports the type error
    for name, value in declared.items():
        try:
            params[name] = FlowParam.model_validate(value)
        except ValidationError:
            pass  # reported by the model with its full location
    return params


def _with_placeholders(
    raw: Mapping[str, Any], params: Mapping[str, FlowParam], flow_id: str, errors: list[SpecError]
) -> dict[str, Any]:
    """A copy whose ``{{ params.x }}`` values are typed stand-ins, so the node models can check them."""
    values = {name: p.default if p.default is not None else PLACEHOLDERS[p.type] for name, p in params.items()}
    # Each reference is checked with its param's default in place: a large default referenced
    # many times would make validation work in proportion to their product, so it is bounded.
    sizes = {name: count_values(value) for name, value in values.items()}
    expanded = 0
    nodes = []
    for node in raw.get("nodes") or []:
        if not isinstance(node, Mapping) or "params" not in node:
            nodes.append(node)
            continue
        node_id = str(node.get("id"))
        known = True
        for path, name in templates.references(node["params"], "params"):
            if name not in values:
                known = False
                errors.append(
                    SpecError(
                        flow_id, node_id, path, f"references unknown flow param '{name}'" + _suggest(name, values)
                    )
                )
                continue
            expanded += sizes[name]
            if expanded > MAX_VALUES:
                known = False
                errors.append(
                    SpecError(
                        flow_id,
                        node_id,
                        path,
                        (
                            f"with their defaults in place, the flow's param references come to more than "
                            f"{MAX_VALUES:,} values; make the default of '{name}' smaller or reference it less"
                        ),
                    )
                )
                break
        rendered = templates.render(node["params"], values) if known else node["params"]
        nodes.append({**node, "params": rendered})
    return {**raw, "nodes": nodes} if "nodes" in raw else dict(raw)


#: Beyond this many names no "did you mean" is offered: difflib compares against each of them,
#: and a spec with thousands of nodes, each with a bad input, must still validate in seconds.
SUGGEST_FROM_AT_MOST = 500


def _suggest(name: str, choices: Any) -> str:
    choices = list(choices)
    if len(choices) > SUGGEST_FROM_AT_MOST:
        return ""
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _pydantic_errors(exc: ValidationError, raw: Mapping[str, Any], flow_id: str, catalog: Catalog) -> list[SpecError]:
    raw_nodes = raw.get("nodes")
    nodes: list[Any] = raw_nodes if isinstance(raw_nodes, list) else []
    out: list[SpecError] = []
    for err in exc.errors():
        loc = list(err["loc"])
        node_id = None
        if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int) and loc[1] < len(nodes):
            node = nodes[loc[1]]
            node_id = str(node.get("id")) if isinstance(node, Mapping) else f"#{loc[1]}"
            loc = loc[2:]
            if loc and isinstance(loc[0], str) and loc[0] in catalog:
                loc = loc[1:]  # the union tag pydantic puts in the path
        elif len(loc) >= 3 and loc[0] == "triggers" and isinstance(loc[2], str):
            loc = [*loc[:2], *loc[3:]]  # the trigger type tag
        if len(loc) >= 3 and loc[0] == "checks" and isinstance(loc[1], int) and loc[2] in checks.CHECK_TYPES:
            loc = [*loc[:2], *loc[3:]]  # the check type tag
        loc = [part for part in loc if not _is_type_tag(part)]
        field = dotted(loc) or ("type" if err["type"].startswith("union_tag") else "<spec>")
        message = _message(err, catalog)
        if err["type"].startswith("union_tag") and field.startswith("checks["):
            message = checks.union_tag_message(err.get("ctx", {}).get("tag"))
        if (node_id, field) not in {(e.node, e.field) for e in out}:  # one message per union field
            out.append(SpecError(flow_id, node_id, field, message))
    return out


TYPE_TAGS = ("bool", "str", "int", "float", "list", "dict", "tuple", "none", "literal", "function")


def _is_type_tag(part: Any) -> bool:
    """pydantic puts the union member (``bool``, ``list[str]``...) into error locations."""
    return isinstance(part, str) and (part.split("[", 1)[0].lower() in TYPE_TAGS or "[" in part)


def _message(err: Mapping[str, Any], catalog: Catalog) -> str:
    kind = err["type"]
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return f"unknown node type '{tag}'{_suggest(str(tag), catalog)}; see `dp nodes` for the catalog"
    if kind == "union_tag_not_found":
        return "missing 'type': every node needs a type from the catalog (`dp nodes`)"
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _graph_errors(raw: Mapping[str, Any], flow_id: str, catalog: Catalog, errors: list[SpecError]) -> list[str] | None:
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
                        flow_id, node_id, field, f"input '{ref}' names no node of this flow{_suggest(source, seen)}"
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


def _schema_errors(
    flow: FlowBase, order: list[str], catalog: Catalog, errors: list[SpecError], broken: set[str]
) -> dict[str, ColumnSchema | None]:
    """Propagate column schemas in topological order; a hook's ``SchemaError`` names the edge."""
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


# --- shared with a sub-chain's body (dp_assets.compiler.plan), so that its nodes are checked
# --- and worded as a flow's nodes are


def node_error(err: Mapping[str, Any], catalog: Catalog) -> tuple[str, str]:
    """A pydantic error of a node's own model as ``(field, message)``, as for a flow's node."""
    loc = [part for part in err.get("loc", ()) if not _is_type_tag(part)]
    return dotted(loc) or "<spec>", _message(err, catalog)


def arity_problems(node_type: Any, inputs: Any) -> list[tuple[str, str]]:
    """``(field, message)`` for each way ``inputs`` do not fit what ``node_type`` takes."""
    errors: list[SpecError] = []
    _arity_errors("", "", node_type, inputs, errors)
    return [(error.field, error.message) for error in errors]
