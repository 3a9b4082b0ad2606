"""One node's call and what its materialisation says: params rendered and checked, retries and
the time limit, the error naming flow and node (``call_node``, shared by a flow's step and a
sub-chain's body), and the metadata and preview of a node's output.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
from dagster import MetadataValue, TableColumn, TableSchema

from dp_assets.catalog.base import FrameStream, NodeContext, Params, SchemaError, whole
from dp_assets.catalog.schema import schema_of
from dp_assets.compiler.plan import FlowPlan, PlannedNode
from dp_assets.compiler.timeouts import call_with_timeout
from dp_assets.deferred import pd
from dp_assets.spec import templates
from dp_assets.spec.model import RetrySpec

PREVIEW_ROWS = 5


class NodeFailed(Exception):
    """A node raised; the message names the flow and node so the UI shows where."""


def call_node(node: PlannedNode, ctx: NodeContext, params: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
    """Run one planned node, a flow's or a sub-chain body's (``compiler.inline``): its params
    rendered from the author's text and checked, retried and limited in time as planned; raises
    ``NodeFailed`` naming the flow and the node (``ctx.node_id``: ``each[3].call`` in a body)."""
    retry = node.retry or RetrySpec()
    attempt = 0  # retries made so far
    while True:
        node_params: Params | None = None
        try:
            rendered = templates.render(
                node.raw_params, params, seal=node.resolves_secrets, inert_params=node.fills_data_templates
            )
            node_params = node.node_type.params_model.model_validate(rendered)
            if node.timeout_seconds:  # a stream is read in the child: the limit covers the reading
                run = functools.partial(_whole_result, node.node_type.run, ctx, node_params, inputs)
                return call_with_timeout(run, ctx, node.timeout_seconds)
            return node.node_type.run(ctx, node_params, inputs)
        except Exception as exc:  # any node error is retried or reported
            if attempt >= retry.max_retries:
                said = _missing_column(node, node_params, inputs, exc) or f"{type(exc).__name__}: {exc}"
                raise NodeFailed(
                    f"flow '{ctx.flow_id}', node '{ctx.node_id}' ({node.node_type.name}) failed"
                    f"{f' after {attempt + 1} attempts' if attempt else ''}: {said}"
                ) from exc
            delay = retry_delay(retry, attempt + 1)
            ctx.log.warning(
                f"node '{ctx.node_id}' attempt {attempt + 1} failed ({type(exc).__name__}: {exc}); "
                f"retrying in {delay:.2f}s"
            )
            time.sleep(delay)
            attempt += 1


def _missing_column(node: PlannedNode, params: Params | None, inputs: dict[str, Any], exc: Exception) -> str | None:
    """For a ``KeyError`` (pandas' answer to a column the frame lacks: ``KeyError: 'dya'``), the
    node type's own schema check on the frames it was given, which names the param and the
    columns the input has, as ``dp validate`` does when the schema is known before the run
    (``field 'params.by': column 'dya' is not in the input (it has: ...)``). ``None`` when the
    check finds nothing or cannot be made (an input that is not a frame)."""
    hook = node.node_type.infer_schema
    if not isinstance(exc, KeyError) or hook is None or params is None:
        return None
    schemas: dict[str, Any] = {}
    for name, value in inputs.items():
        if _is_arrow_table(value):
            value = value.schema.empty_table().to_pandas()
        if not isinstance(value, pd.DataFrame):
            return None
        schemas[name] = schema_of(value)
    try:
        hook(params, schemas)
    except SchemaError as error:
        return f"field 'params.{error.field}': {error.message}"
    except Exception:  # noqa: BLE001 - the check explains the error or not; the node's own error stands
        return None
    return None


def _whole_result(run: Callable[..., Any], *args: Any) -> Any:
    return whole(run(*args))


_BACKOFF = {"linear": dg.Backoff.LINEAR, "exponential": dg.Backoff.EXPONENTIAL}
_JITTER = {"none": None, "full": dg.Jitter.FULL, "plus_minus": dg.Jitter.PLUS_MINUS}


def retry_policy(retry: RetrySpec) -> dg.RetryPolicy:
    """A node's ``retry:`` as the Dagster ``RetryPolicy`` it stands for."""
    return dg.RetryPolicy(
        max_retries=retry.max_retries, delay=retry.delay, backoff=_BACKOFF[retry.backoff], jitter=_JITTER[retry.jitter]
    )


def retry_delay(retry: RetrySpec, retry_number: int) -> float:
    """Seconds to wait before retry ``retry_number`` (1 for the first), computed by Dagster as
    for an op's ``RetryPolicy`` (``RetryPolicy.calculate_delay``, the method Dagster's step
    retries call with the same numbering): exponential backoff waits 1, 3, 7, 15... times the
    delay, linear 1, 2, 3..., and jitter draws from Python's ``random`` as Dagster does."""
    return float(retry_policy(retry).calculate_delay(retry_number))


def output_metadata(plan: FlowPlan, node: PlannedNode, value: Any, ctx: NodeContext) -> dict[str, Any]:
    metadata: dict[str, Any] = {"dp/flow_version": plan.version}
    if _is_arrow_table(value):  # the DuckDB engine's output: described from its first rows
        head = value.slice(0, PREVIEW_ROWS).to_pandas()
        metadata["dagster/row_count"] = value.num_rows
        metadata["dagster/column_schema"] = _column_schema([(str(c), str(t)) for c, t in head.dtypes.items()])
        metadata["dp/schema"] = MetadataValue.json(schema_of(head))
        metadata["preview"] = MetadataValue.md(markdown_preview(head, caption=f"{value.num_rows} rows"))
    elif isinstance(value, pd.DataFrame):
        metadata["dagster/row_count"] = len(value)
        metadata["dagster/column_schema"] = _column_schema([(str(c), str(t)) for c, t in value.dtypes.items()])
        metadata["dp/schema"] = MetadataValue.json(schema_of(value))
        metadata["preview"] = MetadataValue.md(markdown_preview(value))
    elif isinstance(value, FrameStream) and value.peek() is not None:
        caption = "the first part of a streamed output (dagster/row_count and parts: the whole)"
        metadata["preview"] = MetadataValue.md(markdown_preview(value.peek(), caption=caption))
    for key, item in ctx.metadata.items():
        plain = isinstance(item, (str, int, float, bool, MetadataValue, TableSchema))
        metadata[key] = item if plain else MetadataValue.json(item)
    return metadata


def _column_schema(columns: list[tuple[str, str]]) -> TableSchema:
    """A frame's column schema, built where the caller's frame holds only names and types:
    Dagster compiles a record's checked constructor at its first call in a process and keeps the
    calling frame's locals in the compiled function (``dagster_shared.record.JitCheckedNew``).
    Built in ``output_metadata``, that kept the process's first node output alive until exit."""
    return TableSchema(columns=[TableColumn(name=name, type=dtype) for name, dtype in columns])


def _is_arrow_table(value: Any) -> bool:
    arrow = sys.modules.get("pyarrow")
    return arrow is not None and isinstance(value, arrow.Table)


def markdown_preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS, caption: str | None = None) -> str:
    head = df.head(rows)
    columns = [str(c) for c in head.columns]

    def cell(value: Any) -> str:
        text = "" if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.itertuples(index=False)]
    return "\n".join(lines) + f"\n\n{caption or f'{len(df)} rows'}"
