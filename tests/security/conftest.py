"""Fixtures for the sandbox tests: one shared fork server, a loopback server, node contexts.

Every sandbox test runs real child processes. The fork server is shared for the session because
sharing it is exactly what production does within a step: it never runs snippet code, and each
snippet gets its own freshly forked child (X3 checks that nothing leaks between them).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dp_resources.sandbox import Sandbox, SandboxResource


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(fork_server=True) as shared:
        yield shared


@pytest.fixture(scope="session")
def sandbox_resource() -> Iterator[SandboxResource]:
    resource = SandboxResource()
    try:
        yield resource
    finally:
        resource.close()


class LoopbackServer:
    """A TCP server on 127.0.0.1 that counts every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\na,b\n")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def loopback_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def node_context(sandbox_resource: SandboxResource) -> Any:
    from dp_assets.catalog.base import NodeContext

    def make(node_id: str = "py", flow_params: dict[str, Any] | None = None) -> NodeContext:
        return NodeContext(
            flow_id="sandbox_flow",
            node_id=node_id,
            run_id="run-1",
            flow_params=flow_params or {},
            resources={"sandbox": sandbox_resource},
        )

    return make
