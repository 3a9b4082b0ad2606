"""Nodes that run a sub-chain of node specs: ``TryCatch`` (protected) and ``ForEach`` (fan-out).

A ``body`` is a list of node specs, written, checked, planned and run like the flow's own nodes:
the compiler plans it with the flow (``compiler.plan.plan_body``, the same ``FlowPlan`` a flow's
nodes make) and hands the plan to the node in ``ctx.body``; ``compiler.inline`` runs it with the
call a flow's step makes per node. So a body node's params are rendered, sealed and checked, and
its ``retry``, ``timeout_seconds`` and ``on_error`` apply, exactly as for a flow's node.

Body nodes take the previous body node's output (the first takes the outer node's input) unless
they name ``inputs``: earlier body ids (``id`` or ``id.output``) or ``input`` for the outer input.
Body specs are checked when the flow is validated (``check`` hook: errors name
``body[2].params.x``) and their column schemas are propagated like the flow's, so a missing
column inside a body fails ``dp validate`` too.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import Field

from dp_assets.catalog.base import (
    SKIPPED,
    Catalog,
    ColumnSchema,
    NodeContext,
    NodeOutputs,
    NodeType,
    SchemaError,
)
from dp_assets.catalog.schema import as_list, require_columns
from dp_assets.compiler.plan import FlowPlan, plan_body
from dp_assets.compiler.sub_chain_body import BODY_INPUT, InvalidBody, SubChainParams, body_errors
from dp_assets.deferred import pd

ERROR_SCHEMA = {"node": "string", "error_type": "string", "message": "string"}


def _body(ctx: NodeContext, params: SubChainParams) -> FlowPlan:
    """The body as planned with the flow; a node called outside a flow's run (a test calling the
    node type directly) plans the body it was given, taken as written."""
    if ctx.body is not None:
        return ctx.body
    if ctx.catalog is None:
        raise RuntimeError(f"node '{ctx.node_id}' runs a body and needs the catalog in its context")
    return plan_body(params.body, ctx.catalog, flow_id=ctx.flow_id)


def check_body(params: SubChainParams, catalog: Catalog) -> list[tuple[str, str]]:
    return body_errors(params.body, catalog)


def body_schema(params: SubChainParams, input_schema: ColumnSchema | None, catalog: Catalog) -> ColumnSchema | None:
    """The body's output schema, each body node's ``infer_schema`` fed as in a flow."""
    try:
        plan = plan_body(params.body, catalog)
    except InvalidBody:
        return None  # reported by check_body
    schemas: dict[str, ColumnSchema | None] = {BODY_INPUT: input_schema}
    for index, node in enumerate(plan.nodes):
        result = None
        if node.node_type.infer_schema is not None:
            try:
                given = {name: schemas.get(ref) for name, ref in node.inputs.items()}
                result = node.node_type.infer_schema(node.checked_params, given)
            except SchemaError as exc:
                raise SchemaError(f"body[{index}].params.{exc.field}", exc.message) from None
        for output in node.node_type.outputs:
            schemas[f"{node.id}.{output}"] = result
    last = plan.nodes[-1]
    return schemas[f"{last.id}.{last.node_type.outputs[0]}"]


def _error_row(exc: BaseException) -> dict[str, str]:
    from dp_assets.compiler.inline import BodyNodeFailed

    if isinstance(exc, BodyNodeFailed):
        return {"node": exc.node, "error_type": type(exc.error).__name__, "message": str(exc.error)}
    return {"node": "", "error_type": type(exc).__name__, "message": str(exc)}


# --- TryCatch --------------------------------------------------------------------------------


class TryCatchParams(SubChainParams):
    body: list[dict[str, Any]] = Field(
        min_length=1,
        description="Node specs run in order on the input (checked and run like flow nodes); each takes the "
        "previous one's output unless it names `inputs` (earlier body ids, or `input`).",
    )


def try_catch(ctx: NodeContext, params: TryCatchParams, inputs: dict[str, Any]) -> NodeOutputs:
    """Run a protected sub-chain: ``result`` on success; on error ``catch`` holds the error as a row.

    The run goes on either way: the output not produced is skipped, so an error handler hangs
    off ``catch`` and the normal path off ``result``.
    """
    # The runtime (and Dagster) are imported when a sub-chain runs, not when a spec is validated.
    from dp_assets.compiler.inline import BodyNodeFailed, run_inline

    try:
        result = run_inline(_body(ctx, params), ctx, inputs["input"])
    except BodyNodeFailed as exc:
        row = _error_row(exc)
        ctx.log.warning(f"{ctx.node_id}: caught {exc}")
        ctx.add_metadata(caught=row)
        return NodeOutputs({"result": SKIPPED, "catch": pd.DataFrame([row], columns=list(ERROR_SCHEMA))})
    return NodeOutputs({"result": result, "catch": SKIPPED})


# --- ForEach ---------------------------------------------------------------------------------


class ForEachParams(SubChainParams):
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
    from dp_assets.compiler.inline import BodyNodeFailed, run_inline

    df: pd.DataFrame = inputs["input"]
    body = _body(ctx, params)
    if not len(df):
        return NodeOutputs({"result": run_inline(body, ctx, df), "failed": SKIPPED})
    items = _only_failed_before(ctx, params, _items(df, params))

    def run(item: tuple[Any, pd.DataFrame]) -> tuple[str, Any]:
        key, frame = item
        try:
            return "ok", run_inline(body, ctx, frame, label=f"[{key}]")
        except Exception as exc:  # noqa: BLE001 - collected per item: one item's failure is its own row
            return "failed", exc

    with ThreadPoolExecutor(max_workers=min(params.max_workers, len(items))) as pool:
        outcomes = list(pool.map(run, items))
    results, failed, errors = [], [], []
    for (key, frame), (status, value) in zip(items, outcomes, strict=True):
        if status == "ok":
            if value is not SKIPPED:
                results.append(value)
            continue
        failed.append({**_item_key(key, params), **_error_row(value), "input": _input_json(frame)})
        errors.append(value)
    ctx.add_metadata(
        items=len(items),
        items_failed=len(failed),
        failed_items=[{k: v for k, v in f.items() if k != "input"} for f in failed[:50]],
    )
    for error in errors[:5]:
        said = error if isinstance(error, BodyNodeFailed) else f"{type(error).__name__}: {error}"
        ctx.log.warning(f"{ctx.node_id}: item failed: {said}")
    if params.max_failed is not None and len(failed) > params.max_failed:
        raise RuntimeError(
            f"{len(failed)} of {len(items)} items failed (max_failed {params.max_failed}); "
            f"first: {failed[0]['error_type']}: {failed[0]['message']}"
        )
    result = pd.concat(results, ignore_index=params.ignore_index) if results else SKIPPED
    return NodeOutputs({"result": result, "failed": pd.DataFrame(failed) if failed else SKIPPED})


def _item_key(key: Any, params: ForEachParams) -> dict[str, Any]:
    if params.group_by:
        return dict(zip(as_list(params.group_by), key if isinstance(key, tuple) else (key,), strict=True))
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
    NodeType(
        "TryCatch",
        TryCatchParams,
        try_catch,
        "control",
        outputs=("result", "catch"),
        check=check_body,
        infer_schema=_catalog_schema_hook,
    ),
    NodeType(
        "ForEach",
        ForEachParams,
        for_each,
        "control",
        outputs=("result", "failed"),
        check=check_body,
        infer_schema=_catalog_schema_hook,
    ),
]
