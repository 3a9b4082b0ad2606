"""Where a flow step's values come from and go, through its IO managers: the background write
of a frame, an output the step stored and reads back, an output the parent run already stored
(a re-execution from failure), and the latest value of an upstream the run did not select.

What the step asks of its IO managers beyond Dagster's interface is declared in
``dp_io.contract`` (``RunOutputStore``, ``LatestValueReader``); with any other IO manager the
step stores each output synchronously and reads a stream whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from dp_assets.compiler.node_call import NodeFailed
from dp_assets.compiler.plan import FlowPlan
from dp_assets.compiler.translator import TABLE_FORMAT, TABLE_IO_KEY, table_metadata
from dp_io.contract import LatestValueReader, RunOutputStore, partition_name


def partitioned(context: AssetExecutionContext) -> bool:
    return context.has_partition_key or context.has_partition_key_range


def run_output_store(context: AssetExecutionContext) -> RunOutputStore | None:
    """The step's IO manager when it keeps each run's outputs apart (the platform's does)."""
    io = getattr(context.resources, "io_manager", None)
    # issubclass of the type, not isinstance: Python caches it per class (a protocol's isinstance
    # looks up every method each time, ~60 us per step)
    return io if issubclass(type(io), RunOutputStore) else None


def write_behind(
    context: AssetExecutionContext, store: RunOutputStore, read_elsewhere: frozenset[str]
) -> Callable[[str, Any], Future[Any] | None] | None:
    """Queue a node's frame on the IO manager's background writer, keyed as its
    ``handle_output`` will look for it; ``None`` where outputs are stored synchronously (a
    partitioned run). The queue returns the write, or ``None`` for an output stored elsewhere
    (a table). A frame no other step of the run reads is not read soon: its file may bypass
    the page cache."""
    from dp_io.formats import FORMAT_METADATA_KEY

    if partitioned(context):
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


def outputs_of_parent_run(context: AssetExecutionContext, plan: FlowPlan, node_ids: Iterable[str]) -> dict[str, Any]:
    """In a re-execution from failure, the nodes whose outputs the parent run already stored."""
    if not context.run.is_resume_retry:
        return {}
    from dp_io import reusable_parent_outputs

    keys = {dg.AssetKey([plan.flow_id, node_id]): node_id for node_id in node_ids}
    found = reusable_parent_outputs(context.instance, context.run, keys)
    return {keys[key]: ref for key, ref in found.items()}


def stored_reader(context: AssetExecutionContext, store: RunOutputStore, plan: FlowPlan, node_id: str) -> Any:
    partition = None
    if partitioned(context):  # as the IO manager names it
        keys = context.partition_key_range
        partition = partition_name(keys.start, keys.end)
    return lambda: store.load_run_output(context.run.run_id, (plan.flow_id, node_id), partition)


def load_latest(context: AssetExecutionContext, plan: FlowPlan, ref: str) -> Any:
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
        # the same partition as this run's (a range: the partition its last window is)
        **({"partition_key": context.partition_key_range.end} if partitioned(context) else {}),
    )
