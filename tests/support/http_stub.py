"""HTTP peers for tests: real ``http.server`` servers on loopback, each in a daemon thread.

- :class:`LoopbackHttp` serves any ``BaseHTTPRequestHandler`` class (the tool tests' hostile
  targets and their OpenAI-compatible stub build on it); keyword arguments become attributes of
  the server, which a handler reads as ``self.server.NAME``; ``requests`` is a list on the server
  for handlers to record into.
- :class:`StubServer` answers every request with a route function, ``route(request)`` returning a
  :class:`Reply` or ``(status, JSON body)``, and records each :class:`Request` it saw. The node,
  notification and example tests stub the outside systems (webhooks, APIs) with it.

Nothing inside the platform is mocked: the code under test talks real HTTP to these servers.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class LoopbackHttp:
    """``handler`` served on ``host:port`` (0: a free port) in a daemon thread until :meth:`close`.

    ``ssl_context`` wraps the listening socket before serving starts (every connection is TLS).
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        **attrs: Any,
    ):
        self.server = _Server((host, port), handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.server.requests = []  # type: ignore[attr-defined]
        for key, value in attrs.items():
            setattr(self.server, key, value)
        self.host = host
        self.port = self.server.server_address[1]
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{self.port}"
        # a short poll interval: close() returns within 50 ms rather than half a second
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list[Any]:
        return self.server.requests  # type: ignore[attr-defined]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> LoopbackHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Request:
    """A request as a :class:`StubServer` saw it; ``headers`` are looked up case-insensitively."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


Route = Callable[[Request], "Reply | tuple[int, Any]"]


class _RoutedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        parts = urlsplit(self.path)
        request = Request(
            self.command,
            parts.path,
            {key: values[0] for key, values in parse_qs(parts.query).items()},
            self.headers,
            self.rfile.read(length) if length else b"",
        )
        stub: StubServer = self.server.stub  # type: ignore[attr-defined]
        with stub.lock:
            stub.requests.append(request)
        reply = stub.route(request)
        if not isinstance(reply, Reply):
            reply = Reply(*reply)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers = {"Content-Type": "application/json", **reply.headers}
        self.send_response(reply.status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass


class StubServer(LoopbackHttp):
    """Answers with ``route(request)`` (default: 200 and ``{}``); records every request.

    ``route`` may be replaced while the server runs (a test scripts the answers it needs)."""

    def __init__(self, route: Route | None = None, host: str = "127.0.0.1", port: int = 0):
        self.route: Route = route or (lambda request: Reply(200, {}))
        self.lock = threading.Lock()
        super().__init__(_RoutedHandler, host, port, stub=self)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests  # type: ignore[attr-defined]

    def seen(self, path_prefix: str = "", method: str | None = None) -> list[Request]:
        """The requests so far whose path starts with ``path_prefix`` (and of ``method``)."""
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix) and method in (None, r.method)]
