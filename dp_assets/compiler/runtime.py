"""What runs inside a flow's step: the selected nodes in order, each output yielded as an asset.

A flow is one Dagster step by default (see docs/architecture.md for why): nodes run as plain calls,
every asset output still goes through the IO manager and gets its own materialisation, and when
the user materialises only some assets, unselected upstream values are read from their latest
materialisation instead of being recomputed.

A streamed output (``FrameStream``, a source with ``stream: true``) goes to the IO manager as the
stream itself, which stores it part by part; the nodes of the step that need it read the stored
output back, whole, when they run. Without the platform's IO manager it is read whole first.

A frame is stored behind the computation (``dp_io.write_behind``): its write starts when the node
returns and its ``Output`` is yielded later, before anything that must see it stored (a
side-effecting node, a forked timeout, a non-deferred output, a failure, the step's end).

What the step asks of its IO managers beyond Dagster's interface is declared in
``dp_io.contract`` (``RunOutputStore``, ``LatestValueReader``); with any other IO manager the
step stores each output synchronously and reads a stream whole.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from typing import Any

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext, MetadataValue, Output, TableColumn, TableSchema

from dp_assets.catalog.base import SKIPPED, FrameStream, NodeContext, NodeOutputs, whole
from dp_assets.catalog.schema import schema_of
from dp_assets.compiler.checks import check_result
from dp_assets.compiler.node_report import FailedNodes, NodeClock
from dp_assets.compiler.plan import FlowPlan, PlannedNode
from dp_assets.compiler.timeouts import call_with_timeout
from dp_assets.compiler.translator import TABLE_FORMAT, TABLE_IO_KEY, table_metadata
from dp_assets.spec import templates
from dp_assets.spec.model import RetrySpec
from dp_io.contract import LatestValueReader, RunOutputStore

PREVIEW_ROWS = 5
log = logging.getLogger("dp.runtime")


class NodeFailed(Exception):
    """A node raised; the message names the flow and node so the UI shows where."""


_RELEASED = object()  # a value no later node of the step reads


class _LastReads:
    """How many nodes of the step have yet to pass, per value they read, so that a value is let
    go once the last of them has passed: a frame's memory is then reused by the nodes after it
    instead of fresh memory (in a run; ``execute_in_process`` keeps every output itself)."""

    def __init__(self, plan: FlowPlan, step_nodes: frozenset[str]):
        self._left = Counter(ref for node in plan.nodes if node.id in step_nodes for ref in node.inputs.values())

    def passed(self, node: PlannedNode, values: dict[str, Any]) -> None:
        """``node`` (run, reused or skipped) reads nothing more."""
        for ref in node.inputs.values():
            self._left[ref] -= 1
        for ref in [*node.inputs.values(), *(f"{node.id}.{name}" for name in node.node_type.outputs)]:
            if self._left[ref] <= 0 and ref in values:
                values[ref] = _RELEASED


class _Stored:
    """A value the IO manager has stored, read back only when a node of the step needs it."""

    def __init__(self, read: Any):
        self.read = read


def run_flow_step(
    context: AssetExecutionContext,
    plan: FlowPlan,
    step_nodes: frozenset[str],
    provided: dict[str, Any],
) -> Iterator[Output]:
    """Run the step's selected nodes; ``provided`` holds upstream values Dagster loaded as inputs."""
    op_config = context.op_execution_context.op_config or {}
    params = plan.resolve_params(op_config.get("params"))
    selected = {key.path[-1] for key in context.selected_asset_keys}
    resources = {key: getattr(context.resources, key) for key in plan.resource_keys}
    values: dict[str, Any] = {
        f"{node_id}.{plan.node(node_id).node_type.outputs[0]}": value for node_id, value in provided.items()
    }
    ran: set[str] = set()
    store = _run_output_store(context)
    reused = _outputs_of_parent_run(context, plan, step_nodes & selected) if store is not None else {}
    read_elsewhere = _read_by_other_steps(plan, step_nodes)
    behind = _write_behind(context, store, read_elsewhere) if store is not None else None
    deferred: list[list[Any]] = []  # [write, output, checks...] queued (dp_io.write_behind)
    last_reads = _LastReads(plan, step_nodes)
    failures: list[NodeFailed] = []  # the step fails once every node that could run ran
    skipped: list[str] = []  # nodes left out because a node they read failed
    try:
        for node in plan.nodes:
            if node.id not in step_nodes:
                continue
            yield from _release(deferred, written_only=True)
            try:
                if node.is_asset and node.id not in selected:
                    continue
                if store is not None and node.id in reused:  # re-execution from failure: not run again
                    value = store.load_ref(reused[node.id])
                    values[f"{node.id}.{node.node_type.outputs[0]}"] = value
                    ran.add(node.id)
                    context.log.info(f"node '{node.id}' reused from the parent run")
                    if node.id in read_elsewhere:
                        # Dagster skips a downstream step whose input was not yielded in this run.
                        yield from _release(deferred)
                        yield Output(value, output_name=node.id, metadata={"dp/reused_from_parent_run": True})
                    continue
                if not node.is_asset and not _has_upstream_in(node, ran):
                    continue
                inputs = {name: _value(context, plan, values, ref) for name, ref in node.inputs.items()}
                if any(v is SKIPPED for v in inputs.values()) and not node.node_type.accepts_skipped:
                    _mark_skipped(node, values)
                    context.log.info(f"node '{node.id}' skipped: an input did not run")
                    if failures:
                        skipped.append(node.id)
                    continue
                if node.node_type.side_effects or node.timeout_seconds:
                    # Only after what ran before is stored; a timeout forks the process.
                    yield from _release(deferred)
                ctx = NodeContext(
                    plan.flow_id,
                    node.id,
                    context.run.run_id,
                    params,
                    resources,
                    log=context.log,
                    catalog=plan.catalog,
                    run_tags=context.run.tags,
                    instance=context.instance,
                    body=node.body,
                )
                clock = NodeClock(node.id, node.node_type.name)
                try:
                    result = call_node(node, ctx, params, inputs)
                except NodeFailed as exc:
                    _mark_skipped(node, values)
                    if node.on_error == "continue":
                        context.log.warning(f"node '{node.id}' failed and on_error=continue: dependants skip it")
                    else:  # the step fails at the end; nodes that do not read this one still run
                        failures.append(exc)
                        context.log.error(f"{exc}; nodes that read it are skipped, the others run")
                    continue
                clock.stop()
                ran.add(node.id)
                first = node.node_type.outputs[0]
                outputs = dict(result.values) if isinstance(result, NodeOutputs) else {first: result}
                keep_stream = node.is_asset and node.storage_format != TABLE_FORMAT and store is not None
                outputs = {name: v if keep_stream and name == first else whole(v) for name, v in outputs.items()}
                for name, value in outputs.items():
                    values[f"{node.id}.{name}"] = value
                primary = outputs.get(first, SKIPPED)
                context.log.info(clock.line(primary))
                if not node.is_asset or primary is SKIPPED:
                    continue
                output = Output(
                    primary, output_name=node.id, metadata={**_metadata(plan, node, primary, ctx), **clock.metadata()}
                )
                queued = behind(node.id, primary) if behind is not None and isinstance(primary, pd.DataFrame) else None
                if queued is not None:
                    deferred.append([queued, output, *_checks(context, plan, node, values)])
                    continue
                yield from _release(deferred)
                yield output
                if isinstance(primary, FrameStream) and store is not None:  # stored by parts: read on demand
                    values[f"{node.id}.{first}"] = _Stored(_stored_reader(context, store, plan, node.id))
                yield from _checks(context, plan, node, values)
            finally:
                last_reads.passed(node, values)
    except Exception:
        yield from _release(deferred)  # what finished is stored and materialised (E3 reuses it)
        raise
    yield from _release(deferred)
    if len(failures) == 1 and not skipped:
        raise failures[0]
    if failures:
        raise FailedNodes(plan.flow_id, failures, skipped) from failures[0]


def _release(deferred: list[list[Any]], *, written_only: bool = False) -> Iterator[Any]:
    """Yield the queued outputs in the order their nodes ran; ``handle_output`` waits for each
    write. ``written_only``: only those at the front whose writes have finished, so that
    nothing but the step's own reads holds their frames any longer."""
    while deferred and (not written_only or deferred[0][0].done()):
        yield from deferred.pop(0)[1:]


def _checks(context: AssetExecutionContext, plan: FlowPlan, node: PlannedNode, values: dict[str, Any]) -> list[Any]:
    if not node.columns:
        return []
    value = _value(context, plan, values, f"{node.id}.{node.node_type.outputs[0]}")
    return [check_result(dg.AssetKey([plan.flow_id, node.id]), value, list(node.columns))]


def _run_output_store(context: AssetExecutionContext) -> RunOutputStore | None:
    """The step's IO manager when it keeps each run's outputs apart (the platform's does)."""
    io = getattr(context.resources, "io_manager", None)
    # issubclass of the type, not isinstance: Python caches it per class (a protocol's isinstance
    # looks up every method each time, ~60 us per step)
    return io if issubclass(type(io), RunOutputStore) else None


def _write_behind(
    context: AssetExecutionContext, store: RunOutputStore, read_elsewhere: frozenset[str]
) -> Callable[[str, Any], Future[Any] | None] | None:
    """Queue a node's frame on the IO manager's background writer, keyed as its
    ``handle_output`` will look for it; ``None`` where outputs are stored synchronously (a
    partitioned run). The queue returns the write, or ``None`` for an output stored elsewhere
    (a table). A frame no other step of the run reads is not read soon: its file may bypass
    the page cache."""
    from dp_io.formats import FORMAT_METADATA_KEY

    if context.has_partition_key or context.has_partition_key_range:
        return None
    assets_def = context.assets_def

    def queue(output_name: str, frame: Any) -> Future[Any] | None:
        key = assets_def.keys_by_output_name[output_name]
        if assets_def.get_io_manager_key_for_asset_key(key) != "io_manager":
            return None
        frame_format = assets_def.specs_by_key[key].metadata.get(FORMAT_METADATA_KEY)
        return store.write_behind(
            context.run.run_id, tuple(key.path), None, frame, frame_format, read_soon=output_name in read_elsewhere
        )

    return queue


def _outputs_of_parent_run(context: AssetExecutionContext, plan: FlowPlan, node_ids: Iterable[str]) -> dict[str, Any]:
    """In a re-execution from failure, the nodes whose outputs the parent run already stored."""
    if not context.run.is_resume_retry:
        return {}
    from dp_io import reusable_parent_outputs

    keys = {dg.AssetKey([plan.flow_id, node_id]): node_id for node_id in node_ids}
    found = reusable_parent_outputs(context.instance, context.run, keys)
    return {keys[key]: ref for key, ref in found.items()}


def _stored_reader(context: AssetExecutionContext, store: RunOutputStore, plan: FlowPlan, node_id: str) -> Any:
    partition = context.partition_key if context.has_partition_key else None
    return lambda: store.load_run_output(context.run.run_id, (plan.flow_id, node_id), partition)


def _read_by_other_steps(plan: FlowPlan, step_nodes: frozenset[str]) -> frozenset[str]:
    """The nodes of this step whose output a node of another step reads."""
    return (
        frozenset(
            ref.partition(".")[0] for other in plan.nodes if other.id not in step_nodes for ref in other.inputs.values()
        )
        & step_nodes
    )


def _has_upstream_in(node: PlannedNode, ran: set[str]) -> bool:
    return any(ref.partition(".")[0] in ran for ref in node.inputs.values())


def _mark_skipped(node: PlannedNode, values: dict[str, Any]) -> None:
    for name in node.node_type.outputs:
        values[f"{node.id}.{name}"] = SKIPPED


def _value(context: AssetExecutionContext, plan: FlowPlan, values: dict[str, Any], ref: str) -> Any:
    if values.get(ref) is _RELEASED:  # never silently read an older materialisation instead
        raise RuntimeError(f"flow '{plan.flow_id}': '{ref}' was read after its last reader")
    if ref not in values:
        values[ref] = _load_latest(context, plan, ref)
    elif isinstance(values[ref], _Stored):
        values[ref] = values[ref].read()
    return values[ref]


def _load_latest(context: AssetExecutionContext, plan: FlowPlan, ref: str) -> Any:
    """An upstream that this run did not select: its latest materialisation."""
    node_id, _, output = ref.partition(".")
    node = plan.node(node_id)
    if output != node.node_type.outputs[0] or not node.is_asset:
        raise NodeFailed(
            f"flow '{plan.flow_id}': output '{ref}' is not kept between runs; "
            f"materialise '{node_id}' together with its dependants"
        )
    in_table = node.storage_format == TABLE_FORMAT
    reader = getattr(context.resources, TABLE_IO_KEY if in_table else "io_manager")
    if not issubclass(type(reader), LatestValueReader):
        raise NodeFailed(
            f"flow '{plan.flow_id}': '{node_id}' is not selected in this run and its IO manager "
            f"({type(reader).__name__}) cannot read an asset's latest value; materialise "
            f"'{node_id}' together with its dependants"
        )
    metadata = table_metadata(node.storage_table, node_id) if in_table else None
    return reader.load_latest(
        context.instance,
        dg.AssetKey([plan.flow_id, node_id]),
        definition_metadata=metadata,
        lineage_of=context.run.run_id,
    )


def call_node(node: PlannedNode, ctx: NodeContext, params: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
    """Run one planned node, a flow's or a sub-chain body's (``compiler.inline``): its params
    rendered from the author's text and checked, retried and limited in time as planned; raises
    ``NodeFailed`` naming the flow and the node (``ctx.node_id``: ``each[3].call`` in a body)."""
    retry = node.retry or RetrySpec()
    attempt = 0  # retries made so far
    while True:
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
                raise NodeFailed(
                    f"flow '{ctx.flow_id}', node '{ctx.node_id}' ({node.node_type.name}) failed"
                    f"{f' after {attempt + 1} attempts' if attempt else ''}: {type(exc).__name__}: {exc}"
                ) from exc
            delay = retry_delay(retry, attempt + 1)
            ctx.log.warning(
                f"node '{ctx.node_id}' attempt {attempt + 1} failed ({type(exc).__name__}: {exc}); "
                f"retrying in {delay:.2f}s"
            )
            time.sleep(delay)
            attempt += 1


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


def _metadata(plan: FlowPlan, node: PlannedNode, value: Any, ctx: NodeContext) -> dict[str, Any]:
    metadata: dict[str, Any] = {"dp/flow_version": plan.version}
    if isinstance(value, pd.DataFrame):
        metadata["dagster/row_count"] = len(value)
        metadata["dagster/column_schema"] = TableSchema(
            columns=[TableColumn(name=str(c), type=str(t)) for c, t in value.dtypes.items()]
        )
        metadata["dp/schema"] = MetadataValue.json(schema_of(value))
        metadata["preview"] = MetadataValue.md(markdown_preview(value))
    elif isinstance(value, FrameStream) and value.peek() is not None:
        caption = "the first part of a streamed output (dagster/row_count and parts: the whole)"
        metadata["preview"] = MetadataValue.md(markdown_preview(value.peek(), caption=caption))
    for key, item in ctx.metadata.items():
        plain = isinstance(item, (str, int, float, bool, MetadataValue, TableSchema))
        metadata[key] = item if plain else MetadataValue.json(item)
    return metadata


def markdown_preview(df: pd.DataFrame, rows: int = PREVIEW_ROWS, caption: str | None = None) -> str:
    head = df.head(rows)
    columns = [str(c) for c in head.columns]

    def cell(value: Any) -> str:
        text = "" if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:80]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.itertuples(index=False)]
    return "\n".join(lines) + f"\n\n{caption or f'{len(df)} rows'}"
