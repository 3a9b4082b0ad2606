"""Helpers shared by the node tests (imported by name: ``conftest`` is ambiguous across folders)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NodeContext, NodeOutputs

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


# --- a programmable HTTP server --------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """Answers with ``handler(request) -> Reply``; records every request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.handler: Callable[[Recorded], Reply] = lambda request: Reply(200, {})
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with outer.lock:
                    outer.requests.append(request)
                reply = outer.handler(request)
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json", **reply.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"
