"""Cross-flow lineage: a node that reads another flow's node.

``FlowInput`` reads the latest kept output of a node of another flow through the IO manager,
as a step reads an upstream this run did not select. The compiler makes that node's asset a
Dagster dependency of the reader (``NodeType.reads_flows``), so the UI draws the edge between
the flows and ``automation: eager`` on the reader fires when the upstream flow materialises it;
the code location refuses a reference to a flow or node it does not have, and flows that read
each other (docs/flow-spec.md#reading-another-flows-node).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dp_assets.catalog.base import NO_INPUTS, NodeContext, NodeType, Params
from dp_assets.spec.ids import ID_PATTERN as FLOW_ID_PATTERN
from dp_assets.spec.ids import NODE_ID_PATTERN


class FlowInputParams(Params):
    flow: str = Field(pattern=FLOW_ID_PATTERN, max_length=64, description="The id of the flow to read from.")
    node: str = Field(
        pattern=NODE_ID_PATTERN, max_length=64, description="The id of that flow's node whose kept output is read."
    )
    partition: str | None = Field(
        default=None,
        max_length=200,
        description="The partition to read when the upstream flow is partitioned (e.g. "
        "'{{ partition.key }}': the run's own); default: its latest materialisation of any partition.",
    )


def flow_input(ctx: NodeContext, params: FlowInputParams, inputs: dict[str, Any]) -> Any:
    """The latest kept output of another flow's node, read through the IO manager.

    The node's asset depends on the other flow's asset in Dagster: the UI shows the edge, and
    `automation: {condition: eager}` on this flow runs it when the other flow has materialised
    that node. Nothing is copied or recomputed: the value is what that flow's latest run (of
    `partition`, if given) stored."""
    from dagster import AssetKey

    reader = ctx.resource("io_manager")  # a dp_io.contract.LatestValueReader
    key = AssetKey([params.flow, params.node])
    # Raises NeverMaterializedError naming the asset; the step adds this flow and node.
    value = reader.load_latest(ctx.instance, key, lineage_of=ctx.run_id, partition_key=params.partition)
    ctx.add_metadata(**{"dp/read_flow": params.flow, "dp/read_node": params.node})
    return value


def flow_input_reads(params: FlowInputParams) -> tuple[tuple[str, str], ...]:
    return ((params.flow, params.node),)


NODE_TYPES = [
    NodeType(
        "FlowInput",
        FlowInputParams,
        flow_input,
        "source",
        inputs=NO_INPUTS,
        resources=frozenset({"io_manager"}),
        reads_flows=flow_input_reads,
    ),
]
