"""Validation of a flow spec: every error in one pass, each naming the flow, node and field.

Three layers, all run even when an earlier one found errors, so a user fixes a spec in one round:
the pydantic model (types, unknown keys, params of each node type), the graph (ids, inputs,
arity, cycles, ``{{ params.x }}`` references), and column schemas propagated before any run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from dp_assets.catalog.base import Catalog, ColumnSchema
from dp_assets.expressions import parse_expression
from dp_assets.spec import checks, dagster_rules, ephemeral, templates
from dp_assets.spec.document import MAX_VALUES, SpecShapeError, count_values
from dp_assets.spec.graph_checks import arity_problems, bound_inputs, graph_errors, schema_errors
from dp_assets.spec.loading import normalise_spec, spec_version
from dp_assets.spec.model import FlowBase, FlowParam, flow_model
from dp_assets.spec.model_errors import node_error, pydantic_errors, suggest
from dp_assets.spec.spec_errors import FlowValidationError, SpecError

#: The names other modules import from here; the error types, the graph checks and the wording
#: of pydantic's errors live in spec_errors, graph_checks and model_errors.
__all__ = [
    "PLACEHOLDERS",
    "FlowValidationError",
    "SpecError",
    "ValidatedFlow",
    "ValidatedRecords",
    "arity_problems",
    "bound_inputs",
    "node_error",
    "types_used",
    "validate_spec",
]


class ValidatedRecords(Protocol):
    """Where versions that passed are recorded (``spec.validated_cache.ValidatedSpecs``)."""

    def compiled(self, flow_id: str, version: str) -> bool: ...

    def put(self, validated: ValidatedFlow, checked: Mapping[str, Any], *, compiles: bool) -> None: ...


#: The stand-in of a param with no default, of the param's type, where a node param references it:
#: validation then checks the type, and value rules hold for a plausible value (a non-empty text,
#: as a path or a name is: `FileInput: {path: "{{ params.path }}"}` of a required param, a file
#: trigger's, is not "the path is empty"). Columns it may name are not looked for (``_with_placeholders``).
PLACEHOLDERS = {
    "string": "x",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "date": "1970-01-01",
    "datetime": "1970-01-01T00:00:00",
    "list": [],
    "object": {},
}


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
    known_schemas: Mapping[str, ColumnSchema] | None = None,
) -> ValidatedFlow:
    """Validate a spec; raise ``FlowValidationError`` listing every problem found.

    ``check_schemas=False`` skips column-schema propagation: the code location re-validates
    stored specs on every load and they were schema-checked when published.
    ``check_compiles=False`` skips compiling the flow to prove Dagster takes it, for a caller
    that compiles it next anyway (the code location reports that failure per flow).
    ``cache``: where a version that passed is recorded; a version recorded as compiled is not
    compiled again (nor Dagster imported for it), every other check runs (``spec.validated_cache``).
    ``known_schemas``: node id -> output columns for nodes whose columns the spec does not say
    (``dp validate --infer-columns`` reads them from a source's files); checked as declared ones.

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
    guessed: set[str] = set()
    checked = _with_placeholders(raw, params, flow_id, errors, guessed)
    flow = None
    try:
        flow = flow_model(catalog, types_used(checked, catalog)).model_validate(checked)
    except ValidationError as exc:
        errors.extend(pydantic_errors(exc, raw, flow_id, catalog))
    except Exception as exc:  # noqa: BLE001 - a validator's own bug must name the flow, not crash a load
        errors.append(SpecError(flow_id, None, "<spec>", f"could not be checked ({type(exc).__name__}: {exc})"))
    if flow is not None:
        for node in flow.nodes:  # type: ignore[attr-defined]
            errors.extend(_hook_errors(flow_id, node, catalog))
            errors.extend(_expression_param_errors(flow_id, node, catalog, params))
    order = graph_errors(raw, flow_id, catalog, errors)
    schemas: dict[str, ColumnSchema | None] = {}
    if check_schemas and flow is not None and order is not None:
        # A node whose params take a param with no default has columns only the run knows.
        broken = {e.node for e in errors if e.node is not None} | guessed
        schemas = schema_errors(flow, order, catalog, errors, broken, known_schemas)
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


def _expression_param_errors(
    flow_id: str, node: Any, catalog: Catalog, params: Mapping[str, FlowParam]
) -> list[SpecError]:
    """``params.NAME`` in a node's expressions must name a flow param, as ``{{ params.NAME }}``
    must: a misspelt one would otherwise pass validation and fail the run (``flow param `stat`
    is not set``); so must those of its ``expression`` checks."""
    errors = []
    texts = [(f"params.{field}", getattr(node.params, field, None)) for field in catalog[node.type].expression_params]
    texts += [
        (f"checks[{index}].expression", check.expression)
        for index, check in enumerate(node.checks or ())
        if check.type == "expression"
    ]
    for field, text in texts:
        if not isinstance(text, str):
            continue
        # `partition.key` and the like hold a dot, which no flow param does: they are checked apart.
        for name in sorted(n for n in parse_expression(text).params - params.keys() if "." not in n):
            errors.append(
                SpecError(
                    flow_id,
                    node.id,
                    field,
                    f"references unknown flow param '{name}'" + (suggest(name, params) or _declared(params)),
                )
            )
    return errors


def _declared(params: Mapping[str, FlowParam]) -> str:
    return f" (flow params: {', '.join(params)})" if params else " (the flow declares no params)"


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
    raw: Mapping[str, Any], params: Mapping[str, FlowParam], flow_id: str, errors: list[SpecError], guessed: set[str]
) -> dict[str, Any]:
    """A copy whose ``{{ params.x }}`` values are typed stand-ins, so the node models can check them.
    Adds to ``guessed`` the nodes that reference a param with no default: its stand-in says
    whether the type fits, not which columns the run's value will name."""
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
                    SpecError(flow_id, node_id, path, f"references unknown flow param '{name}'" + suggest(name, values))
                )
                continue
            if params[name].default is None:
                guessed.add(node_id)
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
