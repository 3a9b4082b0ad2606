"""A planned flow run in memory, as a sub-chain (``TryCatch``, ``ForEach``) runs its body.

The body is a ``FlowPlan`` like a flow's (``compiler.plan``), and each of its nodes runs through
``runtime.call_node``, the call a flow's step makes: params rendered from the author's text,
secrets sealed and checked, retries and time limit as planned, a failure naming flow and node.
What differs is only what a body has no use for: nothing is stored or made an asset, values pass
in memory (a stream is read whole), and a body node's metadata is dropped.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dp_assets.catalog.base import SKIPPED, NodeContext, NodeOutputs, whole
from dp_assets.compiler.plan import FlowPlan
from dp_assets.compiler.runtime import NodeFailed, call_node
from dp_assets.compiler.sub_chain_body import BODY_INPUT


class BodyNodeFailed(Exception):
    """A body node failed: ``node`` is its body id, ``error`` what it raised; the message is the
    runtime's, naming flow and node (``flow 'f', node 'each[3].call' (HttpTool) failed: ...``)."""

    def __init__(self, node: str, error: BaseException, message: str):
        super().__init__(message)
        self.node = node
        self.error = error


def run_inline(plan: FlowPlan, ctx: NodeContext, value: Any, label: str = "") -> Any:
    """Run ``plan`` on ``value`` (what ``BODY_INPUT`` names); the last node's first output, or
    ``SKIPPED``. Body nodes are named ``<ctx.node_id><label>.<id>``; raises ``BodyNodeFailed``."""
    values: dict[str, Any] = {BODY_INPUT: value}
    for node in plan.nodes:
        inputs = {name: values[ref] for name, ref in node.inputs.items()}
        outputs: dict[str, Any] = {}
        if not any(v is SKIPPED for v in inputs.values()) or node.node_type.accepts_skipped:
            sub = replace(ctx, node_id=f"{ctx.node_id}{label}.{node.id}", metadata={}, body=node.body)
            try:
                result = call_node(node, sub, ctx.flow_params, inputs)
            except NodeFailed as exc:
                if node.on_error != "continue":
                    raise BodyNodeFailed(node.id, exc.__cause__ or exc, str(exc)) from exc
                ctx.log.warning(f"node '{sub.node_id}' failed and on_error=continue: dependants skip it")
            else:
                first = node.node_type.outputs[0]
                outputs = dict(result.values) if isinstance(result, NodeOutputs) else {first: result}
        for output in node.node_type.outputs:
            values[f"{node.id}.{output}"] = whole(outputs.get(output, SKIPPED))  # a body keeps no parts
    last = plan.nodes[-1]
    return values[f"{last.id}.{last.node_type.outputs[0]}"]
