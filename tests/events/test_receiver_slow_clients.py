"""Slow clients (slow-loris) against the real receiver: uvicorn on loopback, raw sockets that send
one byte per second. Each connection is answered or closed within its bound, and other clients
are served meanwhile (issue 16, endpoints)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from dp_sensors.events.sql import SqlEventBus
from dp_sensors.webhook import create_app
from dp_sensors.webhook.server import serve_in_thread

TOKEN = "slow-secret"
BODY_TIMEOUT = 2.0
REQUEST_TIMEOUT = 4.0
SLACK = 3.0  # scheduling on a loaded machine


class OrderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: int


@pytest.fixture
def base_url(tmp_path) -> Iterator[str]:
    bus = SqlEventBus(f"sqlite:///{tmp_path / 'slow.db'}")
    bus.ensure_schema()
    app = create_app(
        catalog={"orders": OrderParams}.get,
        bus=bus,
        environ={"DP_WEBHOOK_TOKEN": TOKEN},
        body_timeout_seconds=BODY_TIMEOUT,
    )
    with serve_in_thread(app, request_timeout_seconds=REQUEST_TIMEOUT) as url:
        yield url
    assert bus.read_after(None) == []  # nothing slow was ever published
    bus.close()


class Trickle:
    """A raw connection that sends ``head`` at once, then ``tail`` one byte per second."""

    def __init__(self, base_url: str, head: bytes, tail: bytes) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.sendall(head)
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, args=(tail,), daemon=True)
        self._thread.start()

    def _send(self, tail: bytes) -> None:
        for byte in tail:
            if self._stop.wait(1.0):
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:
                return

    def answer(self, bound: float) -> tuple[bytes, float]:
        """Everything the server sent until it closed the connection, and when it closed."""
        self.sock.settimeout(bound)
        received = b""
        try:
            while chunk := self.sock.recv(4096):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the connection was still open after {bound:.0f}s; got {received!r}")
        except ConnectionResetError:
            pass
        return received, time.monotonic() - self.started

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def assert_others_are_served(base_url: str) -> None:
    started = time.monotonic()
    response = httpx.get(f"{base_url}/healthz", timeout=10)
    assert response.status_code == 200 and time.monotonic() - started < 2.0


def answer_while_others_are_served(base_url: str, head: bytes, rest: bytes, bound: float) -> tuple[bytes, float]:
    """Trickle ``rest`` after ``head``; check a fast client is served meanwhile; the answer and
    how long it took."""
    trickle = Trickle(base_url, head, rest)
    try:
        assert_others_are_served(base_url)
        return trickle.answer(bound)
    finally:
        trickle.close()


def test_a_slow_body_gets_408_within_the_body_deadline(base_url: str) -> None:
    """One body byte per second: 408 with a JSON message after ~BODY_TIMEOUT s, then closed."""
    head = (
        b"POST /hooks/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 200\r\n\r\n{"
    )
    received, elapsed = answer_while_others_are_served(
        base_url, head, b'"order_id": 1' + b" " * 186 + b"}", BODY_TIMEOUT + SLACK
    )
    assert received.startswith(b"HTTP/1.1 408"), received
    assert b"did not arrive within 2 s" in received and b"connection: close" in received.lower()
    assert BODY_TIMEOUT - 0.5 < elapsed < BODY_TIMEOUT + SLACK


def test_slow_headers_are_cut_off_at_the_request_deadline(base_url: str) -> None:
    """One header byte per second (uvicorn itself has no timer for this): 408 and closed."""
    received, elapsed = answer_while_others_are_served(
        base_url,
        b"POST /hooks/orders HTTP/1.1\r\nHost: x\r\n",
        b"X-Slow: " + b"a" * 100 + b"\r\n\r\n",
        REQUEST_TIMEOUT + SLACK,
    )
    assert received.startswith(b"HTTP/1.1 408"), received
    assert REQUEST_TIMEOUT - 0.5 < elapsed < REQUEST_TIMEOUT + SLACK


def test_an_unread_body_after_an_early_answer_is_cut_off(base_url: str) -> None:
    """401 is answered before the body is read; the rest trickling in does not keep the
    connection: it is closed at the request deadline."""
    head = b"POST /hooks/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"
    trickle = Trickle(base_url, head, b" " * 100)
    try:
        received, elapsed = trickle.answer(REQUEST_TIMEOUT + SLACK)
    finally:
        trickle.close()
    assert received.startswith(b"HTTP/1.1 401"), received
    assert elapsed < REQUEST_TIMEOUT + SLACK


def test_many_slow_clients_do_not_stop_a_fast_one(base_url: str) -> None:
    """Twenty slow connections at once; a normal webhook is still answered at once, and every
    slow connection is closed within its bound."""
    head = (
        b"POST /hooks/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 50\r\n\r\n"
    )
    trickles = [Trickle(base_url, head, b" " * 50) for _ in range(20)]
    try:
        started = time.monotonic()
        response = httpx.post(
            f"{base_url}/hooks/orders", json={"order_id": "x"}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert response.status_code == 422 and time.monotonic() - started < 2.0
        for trickle in trickles:
            received, _ = trickle.answer(BODY_TIMEOUT + SLACK)
            assert received.startswith(b"HTTP/1.1 408")
    finally:
        for trickle in trickles:
            trickle.close()


def test_huge_headers_are_refused_not_500(base_url: str) -> None:
    """Headers that outgrow uvicorn's 16 KiB incomplete-request bound are refused (400) or the
    connection is closed before the app sees them; the server keeps serving others."""
    try:
        response = httpx.post(
            f"{base_url}/hooks/orders",
            json={"order_id": 1},
            timeout=10,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Big": "a" * 400_000},
        )
    except httpx.TransportError:
        pass  # closed while the headers were still being sent
    else:
        assert 400 <= response.status_code < 500, response.status_code
    assert_others_are_served(base_url)
