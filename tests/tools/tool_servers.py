"""Real servers on loopback for the tool tests: an HTTP target, an OpenAI-compatible stub, MCP.

- ``TargetServer``: JSON, echo, status codes, redirects and hostile bodies (gzip bombs, endless
  and slow streams) over real HTTP on 127.0.0.1.
- ``StubLlm``: ``POST /v1/chat/completions`` answered by a "brain" function, so a test scripts
  what the model does (including obeying instructions planted in data, for V10). Every request
  is recorded with its headers.
- ``mcp_demo_server.py`` (next to this file) is an MCP server built with the SDK; tests start it
  over stdio or streamable HTTP.

Imported by the security tests too (``sys.path`` insert of this folder).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import ssl
import sys
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.http_stub import LoopbackHttp
from tests.support.processes import free_port, port_open, start_process, wait_until

HERE = Path(__file__).resolve().parent
MCP_SERVER_SCRIPT = HERE / "mcp_demo_server.py"
SECRET = "s3cr3t-Planted-Value-9431"


class Running(LoopbackHttp):
    """The suite's loopback HTTP server (``tests/support/http_stub.py``); ``tls``: every
    connection is TLS with a throwaway self-signed certificate."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        **attrs: Any,
    ):
        super().__init__(handler, host, port, ssl_context=self_signed_context() if tls else None, **attrs)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _record(self) -> dict[str, Any]:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        seen = {
            "method": self.command,
            "path": parts.path,
            "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
            "headers": dict(self.headers.items()),
            "body": body.decode("utf-8", "replace"),
        }
        self.server.requests.append(seen)  # type: ignore[attr-defined]
        return seen

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    do_POST = do_PUT = do_PATCH = do_DELETE = lambda self: self.do_GET()


class TargetHandler(_Handler):
    def do_GET(self) -> None:
        seen = self._record()
        path, query = seen["path"], seen["query"]
        try:
            if path == "/json":
                self._json(200, {"ok": True, "items": [1, 2, 3]})
            elif path == "/echo":
                self._json(200, seen)
            elif path == "/text":
                self._send(200, b"plain words", "text/plain")
            elif path.startswith("/status/"):
                self._json(int(path.rsplit("/", 1)[1]), {"error": "as asked", "query": query})
            elif path == "/page":  # one record; a Link header to query["next"] when given
                links = {"Link": f'<{query["next"]}>; rel="next"'} if "next" in query else {}
                self._send(200, json.dumps([{"page": path, "port": self.server.server_address[1]}]).encode(), **links)
            elif path == "/redirect":
                self.send_response(int(query.get("code", 302)))
                self.send_header("Location", query["to"])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/gzip-bomb":
                layers = int(query.get("layers", 1))
                body = gzip_bomb(int(float(query.get("mb", 64))), layers)
                self._send(200, body, "application/octet-stream", Content_Encoding=", ".join(["gzip"] * layers))
            elif path == "/big":
                size = int(float(query.get("mb", 5)) * 1024 * 1024)
                declared = query.get("declare", "yes") == "yes"
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if declared:
                    self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b"x" * 65536
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
            elif path == "/endless":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                chunk = b"y" * 65536
                while True:
                    self.wfile.write(chunk)
            elif path == "/slow":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                while True:
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(float(query.get("every", 0.2)))
            elif path == "/hang":
                time.sleep(float(query.get("seconds", 30)))
                self._json(200, {"late": True})
            else:
                self._json(404, {"error": "no route"})
        except (BrokenPipeError, ConnectionResetError):
            pass


@functools.cache
def gzip_bomb(megabytes: int, layers: int = 1) -> bytes:
    """``megabytes`` MB of zeros gzipped ``layers`` times, built without holding the zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1024 * 1024)
    body = b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()
    for _ in range(layers - 1):
        body = gzip.compress(body, 9)
    return body


# --- the stub LLM ----------------------------------------------------------------------------

Brain = Callable[[dict[str, Any]], dict[str, Any]]
DIRECTIVE = re.compile(r"CALL_TOOL\((\w[\w-]*),\s*(\{.*?\})\)")


def tool_call(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def scripted(*messages: dict[str, Any]) -> Brain:
    """Answer with ``messages`` in turn, then ``done``."""
    queue = list(messages)
    return lambda body: queue.pop(0) if queue else {"role": "assistant", "content": "done"}


def _loose_json(text: str) -> dict[str, Any]:
    """Arguments as written, also when they sit JSON-escaped inside a tool result."""
    for candidate in (text, text.replace('\\"', '"')):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return {}


def gullible(body: dict[str, Any]) -> dict[str, Any]:
    """A model that obeys ``CALL_TOOL(name, {json})`` written anywhere in the last user/tool message."""
    last = body["messages"][-1]
    found = DIRECTIVE.findall(str(last.get("content") or ""))
    if found and last["role"] in ("user", "tool"):
        calls = [
            tool_call(name, _loose_json(args), f"call_{len(body['messages'])}_{i}")
            for i, (name, args) in enumerate(found)
        ]
        return {"role": "assistant", "content": None, "tool_calls": calls}
    return {"role": "assistant", "content": "final: " + str(last.get("content"))[:200]}


def always_calls(name: str, arguments: dict[str, Any] | None = None, per_reply: int = 1) -> Brain:
    def brain(body: dict[str, Any]) -> dict[str, Any]:
        n = len(body["messages"])
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [tool_call(name, arguments or {}, f"call_{n}_{i}") for i in range(per_reply)],
        }

    return brain


class LlmHandler(_Handler):
    def do_GET(self) -> None:
        seen = self._record()
        if seen["path"] != "/v1/chat/completions" or self.command != "POST":
            self._json(404, {"error": {"message": "not found"}})
            return
        body = json.loads(seen["body"])
        seen["json"] = body
        message = dict(self.server.brain(body))  # type: ignore[attr-defined]
        message.setdefault("role", "assistant")
        prompt = len(json.dumps(body["messages"])) // 4
        completion = self.server.completion_tokens  # type: ignore[attr-defined]
        self._json(
            200,
            {
                "id": f"chatcmpl-{len(self.server.requests)}",
                "object": "chat.completion",  # type: ignore[attr-defined]
                "model": body.get("model", "stub"),
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )


class StubLlm(Running):
    def __init__(self, brain: Brain | None = None, completion_tokens: int = 10):
        super().__init__(LlmHandler, brain=brain or scripted(), completion_tokens=completion_tokens)
        self.base_url = f"{self.url}/v1"

    @property
    def brain(self) -> Brain:
        return self.server.brain  # type: ignore[attr-defined]

    @brain.setter
    def brain(self, value: Brain) -> None:
        self.server.brain = value  # type: ignore[attr-defined]


# --- MCP server processes --------------------------------------------------------------------


class McpHttpProcess:
    """``mcp_demo_server.py`` serving streamable HTTP on a free loopback port, in its own process
    group (stopped by it)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process = start_process(
            "mcp-demo",
            [sys.executable, str(MCP_SERVER_SCRIPT), "http", str(self.port)],
            env=os.environ,
            log_dir=log_dir,
        )
        try:
            wait_until(
                lambda: port_open("127.0.0.1", self.port, timeout=0.2),
                process=self.process,
                what="the MCP demo server listening",
                bound_seconds=30,
                interval=0.1,
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.process.stop(grace_seconds=10)


class TargetServer(Running):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: bool = False):
        super().__init__(TargetHandler, host=host, port=port, tls=tls)


@functools.cache
def self_signed_context() -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (clients skip verification)."""
    import datetime
    import ipaddress
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context


def mcp_servers(http_url: str | None = None) -> dict[str, Any]:
    from dp_resources.mcp_client import McpServer

    servers = {
        "demo": McpServer(
            command=sys.executable,
            args=[str(MCP_SERVER_SCRIPT)],
            allowed_tools=["add", "echo", "lookup", "fail", "sleep", "big", "show_token"],
            env={"DP_TEST_TOKEN": "${env:DP_SECRET_TOKEN}"},
            timeout_seconds=30,
            max_result_bytes=200_000,
        ),
    }
    if http_url:
        servers["demo_http"] = McpServer(
            transport="http",
            url=http_url,
            allowed_tools=["add", "echo"],
            headers={"X-Api-Key": "${env:DP_SECRET_TOKEN}"},
            timeout_seconds=30,
        )
    return servers
