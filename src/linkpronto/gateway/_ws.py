"""Bridge one ASGI WebSocket to an upstream WebSocket, frame by frame, both directions.

The upstream handshake happens *before* the client is accepted, so the client is accepted with the
subprotocol the upstream chose, and a refusal (e.g. LiveKit's 401 for a bad token) reaches the client
as the same HTTP status through the ASGI ``websocket.http.response`` extension (uvicorn has it); a
server without it gets a close before accept: ``4000 + status`` for a 4xx, 1011 otherwise.
Close codes and reasons travel both ways. Nothing here logs a URL: LiveKit's carry access tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol

from linkpronto.gateway._headers import (
    HOP_BY_HOP,
    WS_HANDSHAKE,
    RawHeaders,
    Upstream,
    connection_tokens,
    loggable_path,
)

log = logging.getLogger("linkpronto.gateway")

# websockets logs the request line (with the query string, hence the token) at DEBUG; give it a
# logger of its own that never goes below INFO.
_wslib_log = logging.getLogger("linkpronto.gateway.upstream_ws")
_wslib_log.setLevel(logging.INFO)

MAX_MESSAGE = 16 * 1024 * 1024  # uvicorn's default ws_max_size
OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0

# Codes that exist only locally and must never be put on the wire (RFC 6455 §7.4.1).
_UNSENDABLE = frozenset({1005, 1006, 1015})


def client_asked_compression(headers: RawHeaders) -> bool:
    return any(
        name == b"sec-websocket-extensions" and b"permessage-deflate" in value.lower()
        for name, value in headers
    )


def upstream_ws_headers(headers: RawHeaders) -> list[tuple[str, str]]:
    """The client's end-to-end headers, minus what the WebSocket library writes itself."""
    drop = connection_tokens(headers) | HOP_BY_HOP | WS_HANDSHAKE
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers if n not in drop]


def _outgoing_close(code: int | None, *, from_upstream: bool) -> int:
    if code is None or code in _UNSENDABLE:
        # No close frame at all means the peer vanished: tell the other side it was an error when
        # LiveKit vanished, a normal end when the browser simply closed without a status.
        if code == 1005:
            return 1000
        return 1011 if from_upstream else 1001
    return code


def _reason(reason: str | None) -> str:
    if not reason:
        return ""
    encoded = reason.encode("utf-8")
    if len(encoded) <= 123:
        return reason
    return encoded[:123].decode("utf-8", errors="ignore")


async def deny(scope: Scope, send: Send, status: int, body: bytes, content_type: bytes) -> None:
    """Refuse a WebSocket that has not been accepted yet, with an HTTP status when possible."""
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode("ascii")),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 4000 + status if 400 <= status < 500 else 1011})


async def bridge(
    scope: Scope,
    receive: Receive,
    send: Send,
    upstream: Upstream,
    *,
    headers: list[tuple[str, str]],
    host_header: str,
    origin: str | None,
    unavailable_body: bytes,
    unavailable_type: bytes,
) -> None:
    """Run one proxied WebSocket until either side closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    qs: bytes = scope.get("query_string", b"")
    target = raw_path.decode("latin-1") + ("?" + qs.decode("latin-1") if qs else "")
    # The URI names the authority the upstream should see (its Host header); the socket itself goes
    # to the literal address, so "localhost" is never re-resolved to ::1 by accident.
    uri = f"{upstream.ws_scheme}://{host_header}{target}"
    protocols: Sequence[str] = scope.get("subprotocols") or ()
    scope_headers: RawHeaders = scope["headers"]
    try:
        upstream_ws = await connect(
            uri,
            host=upstream.host,
            port=upstream.port,
            origin=Origin(origin) if origin else None,
            subprotocols=[Subprotocol(p) for p in protocols] or None,
            additional_headers=headers,
            user_agent_header=None,
            compression="deflate" if client_asked_compression(scope_headers) else None,
            proxy=None,
            open_timeout=OPEN_TIMEOUT,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT,
            max_size=MAX_MESSAGE,
            logger=_wslib_log,
        )
    except InvalidStatus as exc:
        response = exc.response
        ctype = response.headers.get("Content-Type", "text/plain; charset=utf-8")
        await deny(scope, send, response.status_code, bytes(response.body or b""), ctype.encode("latin-1"))
        return
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        log.warning("websocket upstream unavailable for %s: %s", loggable_path(scope["path"]), type(exc).__name__)
        await deny(scope, send, 502, unavailable_body, unavailable_type)
        return
    try:
        await send({"type": "websocket.accept", "subprotocol": upstream_ws.subprotocol})
        await _pump(receive, send, upstream_ws)
    finally:
        # Abort rather than wait when we are being torn down (server shutdown, cancellation).
        if upstream_ws.state is not State.CLOSED:
            upstream_ws.transport.abort()


async def _pump(receive: Receive, send: Send, upstream_ws: ClientConnection) -> None:
    to_upstream = asyncio.ensure_future(_client_to_upstream(receive, upstream_ws))
    to_client = asyncio.ensure_future(_upstream_to_client(send, upstream_ws))
    try:
        await asyncio.wait((to_upstream, to_client), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_upstream, to_client):
            if not task.done():
                task.cancel()
        for task in (to_upstream, to_client):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    client_code: int | None = None
    client_reason = ""
    if to_upstream.done() and not to_upstream.cancelled() and to_upstream.exception() is None:
        client_code, client_reason = to_upstream.result()
    elif to_client.done() and not to_client.cancelled() and to_client.exception() is not None:
        client_code = 1006  # writing to the browser failed: it is gone
    if client_code is not None:  # the browser closed (or vanished): close the upstream the same way
        with contextlib.suppress(ConnectionClosed, OSError):
            await upstream_ws.close(_outgoing_close(client_code, from_upstream=False), _reason(client_reason))
        return
    # The upstream closed first: pass its code and reason on to the browser.
    with contextlib.suppress(OSError):
        await send(
            {
                "type": "websocket.close",
                "code": _outgoing_close(upstream_ws.close_code, from_upstream=True),
                "reason": _reason(upstream_ws.close_reason),
            }
        )


async def _client_to_upstream(receive: Receive, upstream_ws: ClientConnection) -> tuple[int | None, str]:
    """Returns the client's close code and reason, or ``(None, "")`` when the upstream went first."""
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            text = message.get("text")
            try:
                if text is not None:
                    await upstream_ws.send(text)
                else:
                    await upstream_ws.send(message.get("bytes") or b"")
            except ConnectionClosed:
                return None, ""
        elif kind == "websocket.disconnect":
            return int(message.get("code", 1005)), str(message.get("reason") or "")


async def _upstream_to_client(send: Send, upstream_ws: ClientConnection) -> None:
    while True:
        try:
            data = await upstream_ws.recv()
        except ConnectionClosed:
            return
        if isinstance(data, str):
            await send({"type": "websocket.send", "text": data})
        else:
            await send({"type": "websocket.send", "bytes": data})
