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

How the step reads and writes through its IO managers is ``step_io``.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Generator, Iterator
from concurrent.futures import Future
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext, Output

from dp_assets.catalog.base import SKIPPED, FrameStream, NodeContext, NodeOutputs, whole
from dp_assets.compiler import engine_hook, scheduler
from dp_assets.compiler.checks import COLUMN_SCHEMA_KEY, node_results, per_partition, reads_every_row, schema_sample
from dp_assets.compiler.node_call import (  # re-exported: the step's callers import them from here
    PREVIEW_ROWS,
    NodeFailed,
    call_node,
    markdown_preview,
    output_metadata,
    retry_delay,
    retry_policy,
)
from dp_assets.compiler.node_report import EphemeralLines, FailedNodes, NodeClock
from dp_assets.compiler.partitions import partition_values, unpartitioned_run
from dp_assets.compiler.plan import FlowPlan, PlannedNode
from dp_assets.compiler.step_io import (
    load_latest,
    outputs_of_parent_run,
    partitioned,
    run_output_store,
    stored_reader,
    write_behind,
)
from dp_assets.compiler.translator import TABLE_FORMAT

__all__ = [
    "PREVIEW_ROWS",
    "NodeFailed",
    "call_node",
    "markdown_preview",
    "retry_delay",
    "retry_policy",
    "run_flow_step",
]
log = logging.getLogger("dp.runtime")


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
    yield from _Step(context, plan, step_nodes, provided).run()


class _Step:
    """One run of a step: its nodes in the plan's order, independent ones at the same time
    (``compiler.scheduler``), each output yielded on the step's own thread."""

    def __init__(
        self, context: AssetExecutionContext, plan: FlowPlan, step_nodes: frozenset[str], provided: dict[str, Any]
    ):
        self.context, self.plan, self.step_nodes = context, plan, step_nodes
        op_config = context.op_execution_context.op_config or {}
        self.params = plan.resolve_params(op_config.get("params"))
        if partitioned(context):  # "partition.key"... beside the flow params (no dot in theirs)
            self.params.update(partition_values(context))
        elif context.assets_def.partitions_def is not None:
            raise unpartitioned_run(plan.flow_id)
        self.selected = {key.path[-1] for key in context.selected_asset_keys}
        self.resources = {key: getattr(context.resources, key) for key in plan.resource_keys}
        self.values: dict[str, Any] = {
            f"{node_id}.{plan.node(node_id).node_type.outputs[0]}": value for node_id, value in provided.items()
        }
        self.ran: set[str] = set()
        self.store = store = run_output_store(context)
        self.reused = outputs_of_parent_run(context, plan, step_nodes & self.selected) if store is not None else {}
        self.read_elsewhere = _read_by_other_steps(plan, step_nodes)
        self.behind = write_behind(context, store, self.read_elsewhere) if store is not None else None
        self.deferred: list[list[Any]] = []  # [write, output, checks...] queued (dp_io.write_behind)
        self.last_reads = _LastReads(plan, step_nodes)
        self.failures: list[NodeFailed] = []  # the step fails once every node that could run ran
        self.skipped: list[str] = []  # nodes left out because a node they read failed
        #: node -> what blocks its readers: its failed blocking checks, or a node it reads that is blocked
        self.blocked: dict[str, str] = {}
        self.needed = self._needed_ephemeral()
        self.ephemeral_lines = EphemeralLines(plan.ephemeral_chain)
        # policies.engine: duckdb (opened on first use, allowed to read the step's Parquet sources)
        self.engine = engine_hook.StepEngine(
            engine_hook.readers_of(plan), [node for node in plan.nodes if node.id in step_nodes and not node.inputs]
        )

    def run(self) -> Iterator[Any]:
        plan, limit = self.plan, self.plan.max_parallel_nodes
        pending = [node for node in plan.nodes if node.id in self.step_nodes]
        upstreams = {node.id: frozenset(plan.upstream_ids(node.id)) for node in pending}
        running: dict[Future[Any], tuple[PlannedNode, NodeContext, NodeClock]] = {}
        try:
            while pending or running:
                yield from _release(self.deferred, written_only=True)
                candidates = scheduler.ready(upstreams, pending, [node.id for node, _, _ in running.values()])
                started = False
                for node in candidates:
                    alone = scheduler.must_run_alone(node)
                    if (alone and (running or pending[0] is not node)) or (not alone and len(running) >= limit):
                        continue
                    pending.remove(node)
                    started = True
                    call = yield from self._prepare(node)
                    if call is None:
                        self.last_reads.passed(node, self.values)
                        break  # what is ready may have changed
                    ctx, clock, inputs = call
                    if alone or limit == 1 or (not running and len(candidates) == 1):
                        outcome: Future[Any] = Future()
                        try:
                            outcome.set_result(self._compute(node, ctx, inputs, clock))
                        except NodeFailed as exc:
                            outcome.set_exception(exc)
                        yield from self._finish(node, ctx, clock, outcome)
                        break
                    ctx.log = scheduler.BufferedLog(f"dp.node.{node.id}")
                    future = scheduler.start(functools.partial(self._compute, node, ctx, inputs, clock), node.id)
                    running[future] = (node, ctx, clock)
                if not started:
                    if not running:  # cannot happen: the first pending node is always ready then
                        raise RuntimeError(f"flow '{plan.flow_id}': no node of the step can run")
                    done = scheduler.wait_for_one(running)
                    for _, ctx, _ in running.values():
                        ctx.log.forward(self.context.log)  # type: ignore[attr-defined]
                    for future in sorted(done, key=lambda f: plan.nodes.index(running[f][0])):
                        node, ctx, clock = running.pop(future)
                        yield from self._finish(node, ctx, clock, future)
        except Exception:
            self._log_ephemeral_left_over()
            yield from _release(self.deferred)  # what finished is stored and materialised (E3 reuses it)
            raise
        self._log_ephemeral_left_over()
        yield from _release(self.deferred)
        if len(self.failures) == 1 and not self.skipped:
            raise self.failures[0]
        if self.failures:
            raise FailedNodes(plan.flow_id, self.failures, self.skipped) from self.failures[0]

    def _log_ephemeral_left_over(self) -> None:
        line = self.ephemeral_lines.left_over()
        if line is not None:
            self.context.log.info(line)

    def _needed_ephemeral(self) -> set[str]:
        """The ephemeral nodes this run computes: those that a node it runs reads (through others)."""
        needed: set[str] = set()
        for node in self.plan.nodes:
            if node.id not in self.step_nodes or node.ephemeral:
                continue
            runs = node.id in self.selected if node.is_asset else bool(set(self.plan.stored_upstreams(node.id)))
            if runs:
                needed.update(upstream.id for upstream in self.plan.ephemeral_chain(node.id))
        return needed

    def _prepare(self, node: PlannedNode) -> Generator[Any, None, tuple[NodeContext, NodeClock, dict] | None]:
        """A node's context, clock and inputs when it is to run; ``None`` when it is not (not
        selected, reused from the parent run, an input skipped)."""
        context, plan, values = self.context, self.plan, self.values
        if node.is_asset and node.id not in self.selected:
            return None
        if node.ephemeral and node.id not in self.needed:
            return None
        if self.store is not None and node.id in self.reused:  # re-execution from failure: not run again
            value = self.store.load_ref(self.reused[node.id])
            values[f"{node.id}.{node.node_type.outputs[0]}"] = value
            self.ran.add(node.id)
            context.log.info(f"node '{node.id}' reused from the parent run")
            if node.id in self.read_elsewhere:
                # Dagster skips a downstream step whose input was not yielded in this run.
                yield from _release(self.deferred)
                yield Output(value, output_name=node.id, metadata={"dp/reused_from_parent_run": True})
            return None
        if not node.is_asset and not node.ephemeral and not _has_upstream_in(node, self.ran):
            return None
        blocking = next((self.blocked[u] for u in plan.upstream_ids(node.id) if u in self.blocked), None)
        if blocking is not None:  # as Dagster does for the steps after a failed blocking check
            self.blocked[node.id] = blocking
            _mark_skipped(node, values)
            context.log.warning(f"node '{node.id}' skipped: {blocking}")
            return None
        inputs = {name: _value(context, plan, values, ref) for name, ref in node.inputs.items()}
        if any(v is SKIPPED for v in inputs.values()) and not node.node_type.accepts_skipped:
            _mark_skipped(node, values)
            context.log.info(f"node '{node.id}' skipped: an input did not run")
            if self.failures:
                self.skipped.append(node.id)
            return None
        if scheduler.must_run_alone(node):
            # Only after what ran before is stored; a timeout forks the process.
            yield from _release(self.deferred)
        ctx = NodeContext(
            plan.flow_id,
            node.id,
            context.run.run_id,
            self.params,
            self.resources,
            log=context.log,
            catalog=plan.catalog,
            run_tags=context.run.tags,
            instance=context.instance,
            body=node.body,
        )
        return ctx, NodeClock(node.id, node.node_type.name), inputs

    def _compute(self, node: PlannedNode, ctx: NodeContext, inputs: dict[str, Any], clock: NodeClock) -> Any:
        """The node's value (on the step's thread, or in a thread of its own); raises ``NodeFailed``."""
        result = self.engine.compute(node, ctx, self.params, inputs, call_node)
        clock.stop()
        return result

    def _finish(self, node: PlannedNode, ctx: NodeContext, clock: NodeClock, outcome: Future[Any]) -> Iterator[Any]:
        """What a node that ran leaves: its values, its log line, its output and checks."""
        context, plan, values, store = self.context, self.plan, self.values, self.store
        try:
            try:
                result = outcome.result()
            except NodeFailed as exc:
                _mark_skipped(node, values)
                if node.on_error == "continue":
                    context.log.warning(f"node '{node.id}' failed and on_error=continue: dependants skip it")
                else:  # the step fails at the end; nodes that do not read this one still run
                    self.failures.append(exc)
                    context.log.error(f"{exc}; nodes that read it are skipped, the others run")
                return
            self.ran.add(node.id)
            first = node.node_type.outputs[0]
            outputs = dict(result.values) if isinstance(result, NodeOutputs) else {first: result}
            keep_stream = node.is_asset and node.storage_format != TABLE_FORMAT and store is not None
            outputs = {name: v if keep_stream and name == first else whole(v) for name, v in outputs.items()}
            for name, value in outputs.items():
                values[f"{node.id}.{name}"] = value
            primary = outputs.get(first, SKIPPED)
            if node.ephemeral:  # named in the line of its first reader to finish
                self.ephemeral_lines.hold(node.id, clock.item(primary))
            else:
                context.log.info(self.ephemeral_lines.line_of_reader(node.id, clock.line(primary)))
            if not node.is_asset or primary is SKIPPED:
                return
            primary = engine_hook.stored_value(primary)  # DuckDB's: its Arrow table, computed by then
            metadata = {**output_metadata(plan, node, primary, ctx), **clock.metadata()}
            output = Output(primary, output_name=node.id, metadata=metadata)
            # The columns of a few rows, taken before a stream is stored (and consumed), for the
            # schema check of a node whose step reads no check over every row.
            sample = None if reads_every_row(node) else schema_sample(primary)
            behind = self.behind
            queued = behind(node.id, primary) if behind is not None and engine_hook.is_table(primary) else None
            if queued is not None:
                self.deferred.append([queued, output, *self._checks(node, sample)])
                return
            yield from _release(self.deferred)
            yield output
            if isinstance(primary, FrameStream) and store is not None:  # stored by parts: read on demand
                values[f"{node.id}.{first}"] = _Stored(stored_reader(context, store, plan, node.id))
            yield from self._checks(node, sample)
        finally:
            self.last_reads.passed(node, values)

    def _checks(self, node: PlannedNode, sample: Any) -> list[Any]:
        """The node's check results (those this run selected); a failed blocking check stops
        the nodes that read it: they are skipped, and Dagster fails the step at its end.
        ``sample``: rows with the output's columns and types, all the schema check needs."""
        context, plan = self.context, self.plan
        key = dg.AssetKey([plan.flow_id, node.id])
        spec = context.assets_def.specs_by_key[key]
        schema = spec.metadata.get(COLUMN_SCHEMA_KEY) if spec.metadata else None
        if reads_every_row(node):  # rules over every row: the whole output
            frame = engine_hook.as_frame(_value(context, plan, self.values, f"{node.id}.{node.node_type.outputs[0]}"))
        elif schema is not None and sample is not None:
            frame = sample
        else:
            return []
        outcome = node_results(key, node, frame, self.params, schema)
        selected = context.selected_asset_check_keys
        results = [r for r in outcome.results if dg.AssetCheckKey(key, str(r.check_name)) in selected]
        if outcome.blocked_by:
            names = ", ".join(f"'{name}'" for name in outcome.blocked_by)
            self.blocked[node.id] = f"blocking check(s) {names} of node '{node.id}' failed"
            _mark_skipped(node, self.values)
            context.log.error(f"node '{node.id}': {self.blocked[node.id]}; the nodes that read it are skipped")
        return per_partition(context, results)


def _release(deferred: list[list[Any]], *, written_only: bool = False) -> Iterator[Any]:
    """Yield the queued outputs in the order their nodes ran; ``handle_output`` waits for each
    write. ``written_only``: only those at the front whose writes have finished, so that
    nothing but the step's own reads holds their frames any longer."""
    while deferred and (not written_only or deferred[0][0].done()):
        yield from deferred.pop(0)[1:]


def _read_by_other_steps(plan: FlowPlan, step_nodes: frozenset[str]) -> frozenset[str]:
    """The nodes of this step whose output a node of another step reads."""
    read = {
        ref.partition(".")[0] for other in plan.nodes if other.id not in step_nodes for ref in other.inputs.values()
    }
    return frozenset(node_id for node_id in read & step_nodes if not plan.node(node_id).ephemeral)


def _has_upstream_in(node: PlannedNode, ran: set[str]) -> bool:
    return any(ref.partition(".")[0] in ran for ref in node.inputs.values())


def _mark_skipped(node: PlannedNode, values: dict[str, Any]) -> None:
    for name in node.node_type.outputs:
        values[f"{node.id}.{name}"] = SKIPPED


def _value(context: AssetExecutionContext, plan: FlowPlan, values: dict[str, Any], ref: str) -> Any:
    if values.get(ref) is _RELEASED:  # never silently read an older materialisation instead
        raise RuntimeError(f"flow '{plan.flow_id}': '{ref}' was read after its last reader")
    if ref not in values:
        values[ref] = load_latest(context, plan, ref)
    elif isinstance(values[ref], _Stored):
        values[ref] = values[ref].read()
    return values[ref]
