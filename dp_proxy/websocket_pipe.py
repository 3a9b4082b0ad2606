"""A WebSocket the proxy accepted, piped to the webserver's, each client message judged first.

The proxy has authenticated the client and checked its Origin (:mod:`dp_proxy.app`). Each text
message from the client goes through ``judge`` (the caller's roles against the GraphQL operation
it starts, :mod:`dp_proxy.roles`): a refusal is answered to the client and never forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("dp_proxy")


async def deny(websocket: WebSocket, response: Response) -> None:
    """Refuse an upgrade with ``response`` where the server can send one, else close (1008)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008)


async def pipe(
    websocket: WebSocket,
    url: str,
    headers: list[tuple[str, str]],
    *,
    open_timeout: float,
    judge: Callable[[str], Awaitable[str | None]],
) -> None:
    """Connect to ``url`` with ``headers``, accept the client, and pipe both ways until one ends."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    try:
        upstream = await connect(
            url,
            subprotocols=websocket.scope.get("subprotocols") or None,
            additional_headers=headers,
            open_timeout=open_timeout,
            max_size=None,
            compression=None,
        )
    except (TimeoutError, OSError, WebSocketException) as error:
        log.error("upstream WebSocket %s unreachable: %s", url, error)
        await deny(websocket, PlainTextResponse("the Dagster webserver is unreachable\n", 502))
        return

    await websocket.accept(subprotocol=upstream.subprotocol)

    async def client_to_upstream() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text, data = message.get("text"), message.get("bytes")
                if text is None and data is not None:
                    # A binary frame is judged like a text one (the webserver reads either as the
                    # same JSON); one that is not UTF-8 cannot be judged, so it ends the socket.
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        await websocket.close(code=1003)
                        return
                if text is None:
                    continue
                refusal = await judge(text)
                if refusal is not None:
                    await websocket.send_text(refusal)
                    continue
                await upstream.send(text if data is None else data)
        except (WebSocketDisconnect, ConnectionClosed):
            return

    async def upstream_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await websocket.send_text(data)
                else:
                    await websocket.send_bytes(data)
        except ConnectionClosed:
            return

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await upstream.close()
        # The client may be gone already (its disconnect is what ended the pipe).
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(code=upstream.close_code or 1000)
