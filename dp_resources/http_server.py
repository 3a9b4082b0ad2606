"""How the platform's HTTP endpoints (the receiver, the proxy) are served by uvicorn.

uvicorn bounds the size of incomplete request headers (h11: 16 KiB, then 400) and idle
keep-alive connections (``timeout_keep_alive``), but not the *time* a client takes to send a
request: its keep-alive timer is cancelled by the first byte of the next request, and there is
no timer at all for headers or for a body the application never reads. One byte every few seconds then
holds a connection (and a file descriptor) for ever: the slow-loris attack.

:class:`RequestDeadlineProtocol` adds one timer per request: armed when the server starts
waiting for a request (a new connection, or the end of the previous response), cleared when the
whole request (headers and body) has arrived or the connection switches protocol (WebSocket).
When it fires before the headers are complete, the client gets ``408 Request Timeout``; in every
case the connection is closed. Applications keep their own, shorter body deadline, so a slow
body they are reading gets an answer that names the limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_REQUEST_TIMEOUT_SECONDS = 60.0
KEEP_ALIVE_SECONDS = 5
#: States in which the client has sent all of the request (or the connection is over).
_REQUEST_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.MIGHT_SWITCH_PROTOCOL, h11.SWITCHED_PROTOCOL)
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 40\r\n\r\nthe request did not arrive in due time.\n"
)


class RequestDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a total deadline for receiving each request."""

    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_request_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_request_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in _REQUEST_RECEIVED:
            self._clear_request_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state not in _REQUEST_RECEIVED:
            self._arm_request_deadline()  # the next request, or the rest of an unread body

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._clear_request_deadline()
        super().handle_websocket_upgrade(event)

    def _arm_request_deadline(self) -> None:
        self._clear_request_deadline()
        self._request_deadline = self.loop.call_later(self.request_timeout_seconds, self._request_timed_out)

    def _clear_request_deadline(self) -> None:
        if self._request_deadline is not None:
            self._request_deadline.cancel()
            self._request_deadline = None

    def _request_timed_out(self) -> None:
        self._request_deadline = None
        if self.transport.is_closing():
            return
        waiting_for_headers = self.cycle is None or self.cycle.response_complete
        idle = self.conn.their_state is h11.IDLE
        if waiting_for_headers and idle and self._has_partial_request():
            self.transport.write(_TIMEOUT_RESPONSE)
        # Closing also ends a body the application is still waiting for: its receive() then
        # reports a disconnect.
        self.transport.close()

    def _has_partial_request(self) -> bool:
        """Whether some bytes of a request arrived (an idle keep-alive connection just closes)."""
        return bool(self.conn.trailing_data[0])


def protocol_with_deadline(request_timeout_seconds: float) -> type[RequestDeadlineProtocol]:
    """A :class:`RequestDeadlineProtocol` class for one server's request deadline."""
    if request_timeout_seconds <= 0:
        raise ValueError("request_timeout_seconds must be positive")
    return type(
        "RequestDeadlineProtocol",
        (RequestDeadlineProtocol,),
        {"request_timeout_seconds": float(request_timeout_seconds)},
    )


def hardened_server_options(
    request_timeout_seconds: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments every platform endpoint uses."""
    return {
        "http": protocol_with_deadline(request_timeout_seconds),
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": 16 * 1024,
        "server_header": False,
    }
