"""A flow's ``partitions:`` as Dagster partitions, its backfill policy, and a run's partition.

Every asset of a partitioned flow shares one ``PartitionsDefinition``, so Dagster's partition
views, backfill dialog and asset health work as for any partitioned asset. A dynamic flow's keys
are stored by the instance under the flow id (``dp partitions add``).

A backfill over many partitions is one run over the whole range (``BackfillPolicy.single_run``)
when the nodes can take a range: time windows, and no node reading ``partition.key`` (a range
has a start and an end, not one key). Otherwise it is a run per partition. ``backfill:`` in the
spec says which, when ``auto`` does not fit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg

from dp_assets.spec.time_windows import time_partitions
from dp_io.contract import partition_name

#: Names the run's partition goes by in node params and expressions (flow params cannot contain
#: a dot, so they never collide).
PARTITION_KEY, PARTITION_START, PARTITION_END = "partition.key", "partition.start", "partition.end"


def partitions_definition(flow: Any) -> dg.PartitionsDefinition | None:
    """The flow's partitions, or ``None`` for a flow without ``partitions:``."""
    spec = getattr(flow, "partitions", None)
    if spec is None:
        return None
    if spec.type == "static":
        return dg.StaticPartitionsDefinition(list(spec.keys))
    if spec.type == "dynamic":
        return dg.DynamicPartitionsDefinition(name=flow.id)
    return time_partitions(
        spec.every,
        spec.cron,
        spec.start,
        spec.end,
        spec.timezone,
        spec.minute_offset,
        spec.hour_offset,
        spec.day_offset,
    )


def reads_partition_key(raw_nodes: Any) -> bool:
    """Whether any node's params name ``partition.key`` (in a template or an expression)."""
    return PARTITION_KEY in json.dumps(raw_nodes, default=str)


def single_run_backfill(flow: Any, raw: Mapping[str, Any]) -> bool:
    """Whether a backfill of many partitions is one run over the range (see the module doc)."""
    spec = flow.partitions
    if spec.backfill != "auto":
        return bool(spec.backfill == "single_run")
    return bool(spec.type == "time" and not reads_partition_key(raw.get("nodes")))


def backfill_policy(flow: Any, raw: Mapping[str, Any]) -> dg.BackfillPolicy | None:
    if getattr(flow, "partitions", None) is None:
        return None
    if single_run_backfill(flow, raw):
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


def unpartitioned_run(flow_id: str) -> dg.Failure:
    """A run of a partitioned flow that names no partition (a GraphQL launch or ``dp launch``
    without one): refused before any node runs. Left to run, the nodes that do not read
    ``partition.*`` would store outputs of no partition and the first that does would fail
    with 'flow param `partition.start` is not set'."""
    return dg.Failure(
        description=f"flow '{flow_id}' is partitioned and this run names no partition: launch one "
        "partition (`dp launch --partition KEY`, `dp run --partition KEY`, the partition picker of "
        "Materialize in the UI) or a backfill (`dp backfill`)",
        allow_retries=False,
    )


def partition_values(context: dg.AssetExecutionContext) -> dict[str, str]:
    """The run's partition as node params and expressions read it: ``partition.key`` (a range
    is ``first...last``), and for time windows ``partition.start``/``partition.end`` in ISO 8601
    with the time zone (a range: the start of its first and the end of its last window)."""
    if not (context.has_partition_key or context.has_partition_key_range):
        return {}
    keys = context.partition_key_range
    values = {PARTITION_KEY: partition_name(keys.start, keys.end)}
    partitions_def = context.assets_def.partitions_def
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = context.partition_time_window
        values[PARTITION_START] = window.start.isoformat()
        values[PARTITION_END] = window.end.isoformat()
    return values
