"""Helpers shared by the node tests (imported by name: ``conftest`` is ambiguous across folders)."""

from __future__ import annotations

from typing import Any

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext, NodeOutputs
from tests.support.http_stub import Reply as Reply  # re-exported: the node tests import it from here
from tests.support.http_stub import Request, StubServer

COLLECTED: list[str] = []


def make_ctx(
    resources: dict[str, Any] | None = None,
    flow_params: dict[str, Any] | None = None,
    node_id: str = "node",
    flow_id: str = "flow",
) -> NodeContext:
    return NodeContext(flow_id, node_id, "run-1", flow_params or {}, resources or {}, catalog=default_catalog())


def run_node(type_name: str, params: dict[str, Any], inputs: dict[str, Any], ctx: NodeContext | None = None) -> Any:
    """Validate ``params`` with the node type's model and call it, as the runtime does."""
    node_type = default_catalog()[type_name]
    return node_type.run(ctx or make_ctx(), node_type.params_model.model_validate(params), inputs)


def primary(result: Any) -> Any:
    return next(iter(result.values.values())) if isinstance(result, NodeOutputs) else result


# --- a programmable HTTP server: tests/support/http_stub.py ------------------------------

# LoopbackServer: the shared stub (``route`` answers, ``requests`` recorded), under the name these tests use.
LoopbackServer = StubServer
Recorded = Request


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"
