"""Helpers of the example tests: loopback stub services, example flow folders, run metadata.

``StubService`` is a real HTTP server on 127.0.0.1 (a ``ThreadingHTTPServer`` in a daemon thread)
whose answers come from a route function, and which records every request it saw. The examples'
external systems (T2A, market data, exchange rates, monitoring, Slack-style webhooks) are
stubbed with it; nothing is mocked inside the platform.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dagster as dg

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Route = Callable[[Request], "tuple[int, Any]"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class StubService:
    """``route(request) -> (status, json body)`` served on a free loopback port."""

    def __init__(self, route: Route):
        service = self
        self.route = route
        self.requests: list[Request] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    dict(self.headers.items()),
                    (self.rfile.read(length) if length else b"").decode(),
                )
                with service._lock:
                    service.requests.append(request)
                status, body = service.route(request)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def seen(self, path_prefix: str = "", method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r for r in self.requests if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def copy_example(dest: Path, *folders: str, specs: bool = True) -> Path:
    """``flows/<folder>`` of the repository into ``dest`` (specs left out with ``specs=False``)."""
    for folder in folders:
        ignore = None if specs else shutil.ignore_patterns("*.yaml", "*.yml", "*.json")
        shutil.copytree(FLOWS / folder, dest / folder, ignore=ignore, dirs_exist_ok=True)
    return dest


def materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """``{node id: {metadata key: plain value}}`` of a run's asset materialisations."""
    found: dict[str, dict[str, Any]] = {}
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        event = record.event_log_entry.asset_materialization
        if event is not None:
            found[event.asset_key.path[-1]] = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    return found


def log_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def failed_step_messages(result: Any) -> str:
    """Every step failure of an in-process result, for assertion messages."""
    return "\n".join(
        str(e.step_failure_data.error.to_string())
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
    )


def plain_rows(frame: Any, columns: Iterable[str]) -> list[dict[str, Any]]:
    return frame[list(columns)].to_dict(orient="records")
