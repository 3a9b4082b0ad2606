"""HttpResource basics of V4 (SSRF) and V5 (response bombs), with real servers on loopback.

The later tools issue extends these; here: every refused address form, redirects re-checked,
the connection pinned to the checked address, and bodies stopped at a byte cap and a deadline.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from node_helpers import LoopbackServer, Reply

from dp_resources.http import (
    HttpResource,
    RequestRefused,
    RequestTimedOut,
    ResponseTooLarge,
)

REFUSED = [
    pytest.param("http://169.254.169.254/latest/meta-data/", id="V4-metadata"),
    pytest.param("http://2852039166/", id="V4-metadata-decimal"),
    pytest.param("http://0xA9FEA9FE/", id="V4-metadata-hex"),
    pytest.param("http://[::ffff:169.254.169.254]/", id="V4-metadata-ipv6-mapped"),
    pytest.param("http://[::ffff:a9fe:a9fe]/", id="V4-metadata-ipv6-mapped-hex"),
    pytest.param("http://[64:ff9b::a9fe:a9fe]/", id="V4-metadata-nat64"),
    pytest.param("http://127.0.0.1:1/", id="V4-loopback"),
    pytest.param("http://127.1/", id="V4-loopback-short"),
    pytest.param("http://localhost/", id="V4-localhost"),
    pytest.param("http://[::1]/", id="V4-ipv6-loopback"),
    pytest.param("http://10.0.0.1/", id="V4-private-10"),
    pytest.param("http://192.168.1.1/", id="V4-private-192"),
    pytest.param("http://100.100.100.200/", id="V4-alibaba-metadata"),
    pytest.param("http://0.0.0.0/", id="V4-unspecified"),
    pytest.param("file:///etc/passwd", id="V4-file-scheme"),
    pytest.param("gopher://127.0.0.1:6379/_INFO", id="V4-gopher"),
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_addresses(url: str) -> None:
    with pytest.raises((RequestRefused, ValueError)):
        HttpResource().request("GET", url)


def test_allow_private_never_allows_metadata() -> None:
    """V4: allow_private opens private and loopback addresses, not link-local/metadata ones."""
    resource = HttpResource(allow_private=True)
    assert resource.refusal("10.1.2.3") is None and resource.refusal("127.0.0.1") is None
    assert resource.refusal("169.254.169.254") and resource.refusal("::ffff:169.254.169.254")
    assert HttpResource(allowed_networks=["10.1.0.0/16"]).refusal("10.1.2.3") is None
    assert HttpResource(allowed_networks=["10.1.0.0/16"]).refusal("10.2.0.1")


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/", "http://127.0.0.2:{port}/", "file:///etc/passwd"],
    ids=["V4-redirect-metadata", "V4-redirect-other-loopback", "V4-redirect-file"],
)
def test_redirects_are_rechecked(http_server: LoopbackServer, http_resource: Any, location: str) -> None:
    http_server.route = lambda request: Reply(302, b"", {"Location": location.format(port=http_server.port)})
    with pytest.raises(RequestRefused):
        http_resource.request("GET", f"{http_server.url}/start")
    assert len(http_server.requests) == 1


def test_allowed_redirect_is_followed(http_server: LoopbackServer, http_resource: Any) -> None:
    http_server.route = lambda r: (
        Reply(200, {"at": r.path}) if r.path == "/end" else Reply(303, b"", {"Location": "/end"})
    )
    response = http_resource.request("POST", f"{http_server.url}/start", json={"a": 1})
    assert response.json() == {"at": "/end"} and [r.method for r in http_server.requests] == ["POST", "GET"]


def test_connection_is_pinned_to_the_checked_address(
    http_server: LoopbackServer, http_resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """V4 DNS rebinding: the name resolves once per hop; the request goes to that checked address."""
    answers = iter(["127.0.0.1", "169.254.169.254", "169.254.169.254"])
    calls: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            calls.append(host)
            return real(next(answers), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    http_server.route = lambda request: Reply(200, {"host": request.headers["host"]})
    response = http_resource.request("GET", f"http://rebind.test:{http_server.port}/x")
    assert response.json() == {"host": f"rebind.test:{http_server.port}"}
    assert calls == ["rebind.test"]
    with pytest.raises(RequestRefused, match=r"169\.254\.169\.254"):
        http_resource.request("GET", f"http://rebind.test:{http_server.port}/x")


# --- V5: response bombs ----------------------------------------------------------------------


class RawServer:
    """A loopback server that answers every connection with ``serve(conn)``."""

    def __init__(self, serve: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.stop = threading.Event()

        def loop() -> None:
            while not self.stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                threading.Thread(target=self._handle, args=(conn, serve), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()

    def _handle(self, conn: socket.socket, serve: Any) -> None:
        try:
            conn.recv(65536)
            serve(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Any]:
    servers: list[RawServer] = []

    def start(serve: Any) -> RawServer:
        servers.append(RawServer(serve))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def endless(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    while not stop.is_set():
        conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))


def slow(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while not stop.wait(0.2):
        conn.sendall(b"x")


BOMB = gzip.compress(b"\0" * (64 * 1024 * 1024))


def gzip_bomb(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(BOMB) + BOMB)


def huge_declared(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nxx")


@pytest.mark.parametrize(
    ("serve", "error"),
    [
        pytest.param(endless, ResponseTooLarge, id="V5-endless-body"),
        pytest.param(gzip_bomb, ResponseTooLarge, id="V5-gzip-bomb"),
        pytest.param(huge_declared, ResponseTooLarge, id="V5-huge-content-length"),
        pytest.param(slow, RequestTimedOut, id="V5-slow-stream"),
    ],
)
def test_response_bombs_stop_at_cap_or_deadline(raw_server: Any, serve: Any, error: type) -> None:
    server = raw_server(serve)
    resource = HttpResource(allowed_networks=["127.0.0.1/32"], max_bytes=1_000_000, timeout_seconds=1.5)
    with pytest.raises(error):
        resource.request("GET", server.url)
