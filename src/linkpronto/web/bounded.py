"""Bounds on what one HTTP client can make a listener hold: bytes, time and connections.

Both listeners run uvicorn's ``httptools`` protocol; :func:`bounded_protocol` subclasses it with

* a cap on the request line + headers (``max_head_bytes``, 16 KiB): the bytes are counted as they
  arrive, before the parser buffers them, and the excess answers ``431`` and closes;
* a header-read deadline (``header_timeout_s``, ≤ 10 s from the first byte of a request, or from
  the connection for the first one): a slow-header ("slowloris") client is closed;
* a body idle timeout (``body_idle_timeout_s``): a body that stops arriving is closed;
* a cap on concurrent connections per listener (``max_connections``): the excess is answered
  ``503`` and closed at once, before anything is read, so one listener's crowd never takes the
  file descriptors the other needs (each listener has its own :class:`uvicorn.server.ServerState`).

:class:`BodyLimit` is the other half: an ASGI wrapper that counts a request body while it streams
and answers ``413`` (``Connection: close``) as soon as it passes the route's limit — a body is
never read whole before it is checked. :class:`RepeatFilter` rate-limits log lines about the same
failure (and drops the traceback of a client that went away).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from linkpronto.errors import RequestTooLarge

MAX_HEAD_BYTES = 16 * 1024
HEADER_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 10.0
#: A body of one of linkpronto's own routes (≤ 64 KiB) must arrive whole within this time.
OWN_BODY_DEADLINE_S = 20.0
LOG_REPEAT_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_connections: int
    max_head_bytes: int = MAX_HEAD_BYTES
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S


def _plain(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(text)).encode("ascii") + b"\r\nconnection: close\r\n\r\n" + text
    )


RESPONSE_431 = _plain(b"431 Request Header Fields Too Large", b"Request header fields too large")
RESPONSE_503 = _plain(b"503 Service Unavailable", b"Too many connections; try again")
RESPONSE_408 = _plain(b"408 Request Timeout", b"Request timeout")


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of :class:`EdgeLimits` (set by the factory)."""

    limits: EdgeLimits = EdgeLimits(max_connections=1024)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # -- connections ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            # Refused before anything is read or allocated: the descriptor is released at once.
            self._refused = True
            self.transport = transport
            transport.write(RESPONSE_503)
            transport.close()
            _note("connection cap", "listener at its connection cap (%d): refusing", self.limits.max_connections)
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            room = self.limits.max_head_bytes - self._head_bytes
            if len(data) > room:
                head, rest = data[:room], data[room:]
                self._head_bytes += len(head)
                if head:
                    super().data_received(head)
                if self.transport.is_closing():
                    return
                if self._in_head:
                    self._reject(RESPONSE_431, "request head larger than %d bytes: 431", self.limits.max_head_bytes)
                    return
                self.data_received(rest)
                return
            self._head_bytes += len(data)
        super().data_received(data)

    # -- parser callbacks --------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._in_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # -- timers ------------------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.limits.body_idle_timeout_s, self._body_timeout)

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._reject(RESPONSE_408, "request head not received within %.0f s: closed", self.limits.header_timeout_s)

    def _body_timeout(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        if self.flow.read_paused:  # we stopped reading (the app has not consumed yet): not idle
            self._arm_body_timer()
            return
        _note("body idle", "request body idle for %.0f s: closed", self.limits.body_idle_timeout_s)
        self.cycle.disconnected = True
        self.cycle.message_event.set()
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _reject(self, response: bytes, what: str, arg: float) -> None:
        _note(what, what, arg)
        self._cancel_timers()
        if self.cycle is not None and not self.cycle.response_complete:
            # A request is in flight on this connection (pipelining): just close.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        else:
            self.transport.write(response)
        self.transport.close()


def bounded_protocol(limits: EdgeLimits) -> type[BoundedHttpTools]:
    """A protocol class for ``uvicorn.Config(http=...)`` carrying ``limits``."""
    return type("BoundedHttpTools", (BoundedHttpTools,), {"limits": limits})


# -- bodies ----------------------------------------------------------------------------------------
class BodyTooLarge(Exception):
    """The body passed the route's limit while it was streaming."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes.

    Raises :class:`starlette.requests.ClientDisconnect` when the client goes away.
    """
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


class BodyLimit:
    """ASGI wrapper: bodies of ``limit_for(path)`` bytes at most; ``413`` and close beyond.

    ``limit_for`` returns ``None`` for paths it does not govern (an app's own routes). The whole body
    must also arrive within ``deadline_s`` (a trickling body is answered 408). A declared
    ``Content-Length`` above the limit is refused before a byte of the body is read; a streamed
    (chunked) body is counted as it arrives. A client that disconnects mid-body ends the request
    quietly (no traceback).
    """

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str], int | None], deadline_s: float = OWN_BODY_DEADLINE_S
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send)
            return
        seen = 0
        started = refused = body_done = False
        deadline = time.monotonic() + self.deadline_s

        async def counted() -> Message:
            nonlocal seen, started, refused, body_done
            if refused:
                return {"type": "http.disconnect"}
            if body_done:  # e.g. waiting for a disconnect while answering: no deadline then
                return await receive()
            try:
                # A body that trickles in (a byte every few seconds) is cut at the deadline as well.
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                refused = True
                _note("body deadline", "request body not complete within %.0f s: 408", self.deadline_s)
                if not started:
                    started = True
                    await _send_status(send, 408, b"Request body too slow")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Answer now and let the app see a client that went away; whatever the app
                    # sends afterwards (an error page) is dropped.
                    refused = True
                    if not started:
                        started = True
                        await _send_413(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracking)
        except (ClientDisconnect, BodyTooLarge):
            if not refused:
                _note("client disconnect", "client went away while sending its body")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_status(send: Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})


async def _send_413(send: Send) -> None:
    body = RequestTooLarge.WIRE_BODY
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- logs ------------------------------------------------------------------------------------------
_log = logging.getLogger("linkpronto.edge")


def _note(key: str, msg: str, *args: Any) -> None:
    """One line about a client misbehaving; :class:`RepeatFilter` (installed on this logger by the
    orchestrator) keeps it to one per window per kind. ``key`` names the kind for readers."""
    _log.info(msg, *args)


class RepeatFilter(logging.Filter):
    """At most one record per (logger, message template) per window; no traceback for a client
    that went away (``ClientDisconnect``, reset connections) or a descriptor shortage, which are
    conditions, not bugs."""

    QUIET = (ClientDisconnect, ConnectionResetError, BrokenPipeError, BodyTooLarge)

    def __init__(self, window_s: float = LOG_REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.QUIET) or (isinstance(exc, OSError) and exc.errno in _FD_ERRNOS):
            record.exc_info = None
            record.exc_text = None
        key = (record.name, str(record.msg))
        now = self.clock()
        last, suppressed = self._seen.get(key, (float("-inf"), 0))
        if now - last < self.window_s:
            self._seen[key] = (last, suppressed + 1)
            return False
        if len(self._seen) > 1024:  # a bound on the filter's own memory
            self._seen.clear()
        self._seen[key] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} ({suppressed} more like this in the last {self.window_s:.0f} s)"
        return True


def _fd_errnos() -> frozenset[int]:
    import errno

    return frozenset(getattr(errno, n) for n in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM") if hasattr(errno, n))


_FD_ERRNOS = _fd_errnos()
RATE_LIMITED_LOGGERS = ("uvicorn.error", "asyncio", "linkpronto.edge", "linkpronto.web.public")

#: Bodies of linkpronto's own public routes (join, device check and the rest): 64 KiB at most.
OWN_BODY_LIMIT = 64 * 1024


def own_body_limit(path: str) -> int | None:
    """The body limit of a public path linkpronto serves itself; None for the app's paths (the
    handlers read their bodies through :func:`read_body` too, so a path that only becomes one of
    ours after normalisation is bounded as well)."""
    from linkpronto import paths

    if paths.is_own(path):
        return OWN_BODY_LIMIT
    return None
