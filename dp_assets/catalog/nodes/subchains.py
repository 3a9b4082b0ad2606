"""Nodes that run a sub-chain of node specs: ``TryCatch`` (protected) and ``ForEach`` (fan-out).

A ``body`` is a list of node specs, written like the flow's own nodes. Body nodes take the
previous body node's output (the first takes the outer node's input) unless they name ``inputs``:
earlier body ids (``id`` or ``id.output``) or ``input`` for the outer input. Body specs are
checked when the flow is validated (``check`` hook: errors name ``body[2].params.x``) and their
column schemas are propagated like the flow's, so a missing column inside a body fails
``dp validate`` too. At run time the body nodes run in order with ``ctx.catalog``.

Body nodes may need resources (a ``TableReader`` in a body needs ``databases``): the flow's plan
must include ``body_resources(params, catalog)`` so the Dagster step gets them.
"""

from __future__ import annotations

import json

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from pydantic import Field, ValidationError

from dp_assets.catalog.base import (
    SKIPPED,
    Catalog,
    ColumnSchema,
    NodeContext,
    NodeOutputs,
    NodeType,
    Params,
    SchemaError,
    whole,
)
from dp_assets.catalog.schema import as_list, require_columns

OUTER = "input"
ERROR_SCHEMA = {"node": "string", "error_type": "string", "message": "string"}


class BodyError(Exception):
    """A body node failed; ``node`` is its body id."""

    def __init__(self, node: str, error: BaseException):
        super().__init__(f"body node '{node}' failed: {type(error).__name__}: {error}")
        self.node = node
        self.error = error


@dataclass(frozen=True)
class BodyNode:
    id: str
    node_type: NodeType
    params: Any
    inputs: dict[str, str]  # input name -> "id.output" or "input"


def _loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _bind(node: Any, node_type: NodeType, previous: str | None) -> dict[str, str]:
    raw = node.inputs
    if not raw:
        if node_type.inputs.variadic:
            return {previous: previous} if previous else {}
        return {node_type.inputs.names[0]: previous} if node_type.inputs.names and previous else {}
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif node_type.inputs.variadic:
        items = [(ref, ref) for ref in raw]
    else:
        items = list(zip(node_type.inputs.names, raw))
    return dict(items)


def parse_body(body: list[Any], catalog: Catalog) -> tuple[list[BodyNode], list[tuple[str, str]]]:
    """The body's nodes, bound to their inputs, and every ``(field, message)`` problem found."""
    from dp_assets.spec.model import node_model

    nodes: list[BodyNode] = []
    errors: list[tuple[str, str]] = []
    outputs: dict[str, tuple[str, ...]] = {}
    previous: str | None = OUTER
    if not body:
        errors.append(("body", "the body needs at least one node"))
    for i, item in enumerate(body):
        where = f"body[{i}]"
        if not isinstance(item, Mapping):
            errors.append((where, "a body node must be a mapping like a flow node"))
            continue
        type_name = item.get("type")
        if not isinstance(type_name, str) or type_name not in catalog:
            errors.append((f"{where}.type", f"unknown node type {type_name!r}; see `dp nodes`"))
            continue
        try:
            node = node_model(catalog, type_name).model_validate(dict(item))
        except ValidationError as exc:
            for err in exc.errors():
                message = "unknown field; remove it or check its spelling" if err["type"] == "extra_forbidden" else err["msg"]
                errors.append((f"{where}.{_loc(err['loc'])}", message))
            continue
        node_type = catalog[type_name]
        if node.id in outputs or node.id == OUTER:
            errors.append((f"{where}.id", f"duplicate body node id '{node.id}'"))
            continue
        inputs = _bind(node, node_type, previous)
        for name, ref in list(inputs.items()):
            source, _, output = ref.partition(".")
            if ref == OUTER:
                continue
            if source not in outputs:
                errors.append((f"{where}.inputs",
                               f"input '{ref}' names no earlier body node (or 'input' for the outer input)"))
            elif not output:
                inputs[name] = f"{source}.{outputs[source][0]}"
            elif output not in outputs[source]:
                errors.append((f"{where}.inputs", f"body node '{source}' has no output '{output}'"))
        if node_type.check is not None:
            errors += [(f"{where}.params.{f}", m) for f, m in node_type.check(node.params, catalog)]
        outputs[node.id] = node_type.outputs
        nodes.append(BodyNode(node.id, node_type, node.params, inputs))
        previous = f"{node.id}.{node_type.outputs[0]}"
    return nodes, errors


def check_body(params: Any, catalog: Catalog) -> list[tuple[str, str]]:
    return parse_body(params.body, catalog)[1]


def body_node_types(params: Any, catalog: Catalog) -> list[NodeType]:
    """The node types of the body, and of the bodies inside it."""
    nodes, _ = parse_body(getattr(params, "body", []) or [], catalog)
    found: list[NodeType] = []
    for node in nodes:
        found.append(node.node_type)
        if hasattr(node.params, "body"):
            found += body_node_types(node.params, catalog)
    return found


def body_resources(params: Any, catalog: Catalog) -> frozenset[str]:
    """Resources the body's node types need (the plan must provide them to the step)."""
    return frozenset().union(*(node_type.resources for node_type in body_node_types(params, catalog)))


def body_schema(params: Any, input_schema: ColumnSchema | None, catalog: Catalog) -> ColumnSchema | None:
    nodes, errors = parse_body(params.body, catalog)
    if errors or not nodes:
        return None
    schemas: dict[str, ColumnSchema | None] = {OUTER: input_schema}
    for i, node in enumerate(nodes):
        if node.node_type.infer_schema is None:
            result = None
        else:
            try:
                result = node.node_type.infer_schema(node.params, {n: schemas.get(r) for n, r in node.inputs.items()})
            except SchemaError as exc:
                raise SchemaError(f"body[{i}].params.{exc.field}", exc.message) from None
        for output in node.node_type.outputs:
            schemas[f"{node.id}.{output}"] = result
    last = nodes[-1]
    return schemas[f"{last.id}.{last.node_type.outputs[0]}"]


def run_body(ctx: NodeContext, params: Any, value: Any, label: str = "") -> Any:
    """Run the body on ``value``; the last node's first output, or ``SKIPPED``. Raises ``BodyError``."""
    if ctx.catalog is None:
        raise RuntimeError(f"node '{ctx.node_id}' runs a body and needs the catalog in its context")
    nodes, errors = parse_body(params.body, ctx.catalog)
    if errors:
        raise ValueError("; ".join(f"{f}: {m}" for f, m in errors))
    values: dict[str, Any] = {OUTER: value}
    for node in nodes:
        inputs = {name: values[ref] for name, ref in node.inputs.items()}
        if any(v is SKIPPED for v in inputs.values()) and not node.node_type.accepts_skipped:
            result: Any = NodeOutputs({o: SKIPPED for o in node.node_type.outputs})
        else:
            sub = replace(ctx, node_id=f"{ctx.node_id}{label}.{node.id}", metadata={})
            try:
                result = whole(node.node_type.run(sub, node.params, inputs))  # a body keeps no parts
            except Exception as exc:
                raise BodyError(node.id, exc) from exc
        outputs = result.values if isinstance(result, NodeOutputs) else {node.node_type.outputs[0]: result}
        for output in node.node_type.outputs:
            values[f"{node.id}.{output}"] = outputs.get(output, SKIPPED)
    last = nodes[-1]
    return values[f"{last.id}.{last.node_type.outputs[0]}"]


def _error_row(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, BodyError):
        return {"node": exc.node, "error_type": type(exc.error).__name__, "message": str(exc.error)}
    return {"node": "", "error_type": type(exc).__name__, "message": str(exc)}


# --- TryCatch --------------------------------------------------------------------------------


class TryCatchParams(Params):
    body: list[dict[str, Any]] = Field(
        min_length=1,
        description="Node specs run in order on the input (checked like flow nodes); each takes the "
        "previous one's output unless it names `inputs` (earlier body ids, or `input`).",
    )


def try_catch(ctx: NodeContext, params: TryCatchParams, inputs: dict[str, Any]) -> NodeOutputs:
    """Run a protected sub-chain: ``result`` on success; on error ``catch`` holds the error as a row.

    The run goes on either way: the output not produced is skipped, so an error handler hangs
    off ``catch`` and the normal path off ``result``.
    """
    try:
        result = run_body(ctx, params, inputs["input"])
    except BodyError as exc:
        row = _error_row(exc)
        ctx.log.warning(f"{ctx.node_id}: caught {row['error_type']} in body node '{row['node']}': {row['message']}")
        ctx.add_metadata(caught=row)
        return NodeOutputs({"result": SKIPPED, "catch": pd.DataFrame([row], columns=list(ERROR_SCHEMA))})
    return NodeOutputs({"result": result, "catch": SKIPPED})


# --- ForEach ---------------------------------------------------------------------------------


class ForEachParams(Params):
    body: list[dict[str, Any]] = Field(min_length=1, description="Node specs run on each item, as in TryCatch.")
    group_by: str | list[str] | None = Field(
        default=None, description="Run the body once per group of these columns; default once per row."
    )
    dropna: bool = Field(default=True, description="Drop groups whose key is null (as groupby).")
    max_workers: int = Field(default=4, ge=1, le=64, description="Items run at the same time (threads).")
    max_failed: int | None = Field(
        default=None, ge=0, description="Fail the node when more items than this fail; default never."
    )
    ignore_index: bool = Field(default=True, description="Number the rows of the combined result anew.")


def _items(df: pd.DataFrame, params: ForEachParams) -> list[tuple[Any, pd.DataFrame]]:
    if params.group_by is None:
        return [(i, df.iloc[i : i + 1]) for i in range(len(df))]
    return list(df.groupby(params.group_by, sort=False, dropna=params.dropna))


def _input_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", date_format="iso", default_handler=str)


def for_each(ctx: NodeContext, params: ForEachParams, inputs: dict[str, Any]) -> NodeOutputs:
    """Run a sub-chain per row or per group, in parallel threads; results stacked, failures collected.

    ``result`` stacks the results in input order (skipped when no item succeeded); ``failed`` has one
    row per failed item: its key, the body node, the error, and the item's rows as JSON.
    """
    df: pd.DataFrame = inputs["input"]
    if not len(df):
        return NodeOutputs({"result": run_body(ctx, params, df), "failed": SKIPPED})
    items = _only_failed_before(ctx, params, _items(df, params))

    def run(item: tuple[Any, pd.DataFrame]) -> tuple[str, Any]:
        key, frame = item
        try:
            return "ok", run_body(ctx, params, frame, label=f"[{key}]")
        except Exception as exc:  # noqa: BLE001 - collected per item
            return "failed", exc

    with ThreadPoolExecutor(max_workers=min(params.max_workers, len(items))) as pool:
        outcomes = list(pool.map(run, items))
    results, failed = [], []
    for (key, frame), (status, value) in zip(items, outcomes):
        if status == "ok":
            if value is not SKIPPED:
                results.append(value)
            continue
        failed.append({**_item_key(key, params), **_error_row(value), "input": _input_json(frame)})
    ctx.add_metadata(items=len(items), items_failed=len(failed),
                     failed_items=[{k: v for k, v in f.items() if k != "input"} for f in failed[:50]])
    for row in failed[:5]:
        ctx.log.warning(f"{ctx.node_id}: item failed in body node '{row['node']}': {row['error_type']}: {row['message']}")
    if params.max_failed is not None and len(failed) > params.max_failed:
        raise RuntimeError(f"{len(failed)} of {len(items)} items failed (max_failed {params.max_failed}); "
                           f"first: {failed[0]['error_type']}: {failed[0]['message']}")
    result = pd.concat(results, ignore_index=params.ignore_index) if results else SKIPPED
    return NodeOutputs({"result": result, "failed": pd.DataFrame(failed) if failed else SKIPPED})


def _item_key(key: Any, params: ForEachParams) -> dict[str, Any]:
    if params.group_by:
        return dict(zip(as_list(params.group_by), key if isinstance(key, tuple) else (key,)))
    return {"row": key}


def _only_failed_before(ctx: NodeContext, params: ForEachParams, items: list) -> list:
    """In a run launched by ``dp retry-failed RUN`` (tag ``dp/retry_items``), only RUN's failed items."""
    from dp_sensors.triggers.dead_letters import RETRY_ITEMS_TAG, failed_items_of

    earlier_run = ctx.run_tags.get(RETRY_ITEMS_TAG)
    if not earlier_run or ctx.instance is None:
        return items
    failed = failed_items_of(ctx.instance, earlier_run).get(ctx.node_id, [])

    def canonical(record: dict[str, Any]) -> str:
        return json.dumps({k: record.get(k) for k in sorted(_item_key(items[0][0], params))}, default=str)

    wanted = {canonical(record) for record in failed}
    chosen = [item for item in items if canonical(_item_key(item[0], params)) in wanted]
    ctx.log.info(f"{ctx.node_id}: retrying {len(chosen)} of {len(items)} items that failed in run {earlier_run}")
    return chosen


def _catalog_schema_hook(params: Any, inputs: dict) -> ColumnSchema | None:
    """Check the body's schemas with the default catalog (hooks do not receive the catalog)."""
    from dp_assets.catalog import default_catalog

    schema = inputs.get("input")
    if isinstance(params, ForEachParams):
        require_columns(schema, as_list(params.group_by), "group_by")
    body_schema(params, schema, default_catalog())
    return None  # the outputs differ (result / catch or failed); the validator gives one schema for all


NODE_TYPES = [
    NodeType("TryCatch", TryCatchParams, try_catch, "control", outputs=("result", "catch"),
             check=check_body, infer_schema=_catalog_schema_hook),
    NodeType("ForEach", ForEachParams, for_each, "control", outputs=("result", "failed"),
             check=check_body, infer_schema=_catalog_schema_hook),
]
