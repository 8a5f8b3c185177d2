"""Bounds on what one HTTP client can make a listener hold: bytes, time and connections.

Both listeners run uvicorn's ``httptools`` protocol; :func:`bounded_protocol` subclasses it with

* a cap on the request line + headers (``max_head_bytes``, 16 KiB): the bytes are counted as they
  arrive, before the parser buffers them, and the excess answers ``431`` and closes;
* a header-read deadline (``header_timeout_s``, ≤ 10 s from the first byte of a request, or from
  the connection for the first one): a slow-header ("slowloris") client is closed;
* a body idle timeout (``body_idle_timeout_s``): a body that stops arriving is closed;
* a minimum body rate (``min_body_rate`` after ``body_rate_grace_s``, Apache mod_reqtimeout's
  ``MinRate``) and a whole-body deadline (``body_deadline_s``), on every path — the app's and the
  unauthenticated webhook's included: a trickle that keeps the idle timer happy is cut off (408);
* at the connection cap (main pool and reserve full), the connection that has been sending its
  request the longest — a slow body to an app path, typically, in the main pool or the reserve — is
  closed to make room (:meth:`BoundedHttpTools.connection_made`; HAProxy and nginx shed the same
  way), so slow senders never shut out quick callers; only when no connection is a slow sender is
  the newcomer refused;
* accepts are paced (:class:`PacedSocket`): a few per loop iteration, so a crowd never takes the
  process's descriptors before the budget sees it;
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
import socket
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


#: Apache mod_reqtimeout's ``body=…,MinRate=…``: past a grace period a body must average this rate.
MIN_BODY_RATE = 1024
BODY_RATE_GRACE_S = 10.0
#: The whole body of any request (app paths included) arrives within this time, whatever its rate.
BODY_DEADLINE_S = 300.0
#: At the connection cap, the oldest connection still *sending* its request (for at least this
#: long: not one accepted a moment ago, whose bytes are not read yet) is closed to make room
#: (:meth:`BoundedHttpTools.connection_made`). Small on purpose: a crowd that reconnects every
#: second must not make itself unevictable; a real request arrives whole in milliseconds.
EVICTABLE_AFTER_S = 0.1


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    max_connections: int
    max_head_bytes: int = MAX_HEAD_BYTES
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_idle_timeout_s: float = BODY_IDLE_TIMEOUT_S
    min_body_rate: int = MIN_BODY_RATE
    body_rate_grace_s: float = BODY_RATE_GRACE_S
    body_deadline_s: float = BODY_DEADLINE_S
    evictable_after_s: float = EVICTABLE_AFTER_S
    #: Connections past ``max_connections`` kept for ``reserved_for`` paths only (linkpronto's own
    #: public routes; the admin API's authenticated callers): nginx ``limit_conn`` per class.
    reserve: int = 0
    reserved_for: Callable[[str], bool] | None = None


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
        self._rate_timer: asyncio.TimerHandle | None = None
        self._sending_since: float | None = None  # the current request is still arriving since then
        self._in_reserve = False
        self._limbo = False  # over the budget, waiting for its head to say whether it is reserved
        self._own = False  # its current request is for a reserved path
        self._dropped = False  # refused after its head (the reserve was not for its path)
        self._body_started = 0.0
        self._body_bytes = 0

    # -- connections ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # nginx's limit_conn keeps a crowd from taking a listener; a cap alone would let slow
        # senders (unauthenticated, to app paths or the webhook) shut everyone out. So at the cap
        # the connection that has been sending its request the longest — past
        # ``evictable_after_s`` — is closed to make room: a request that arrived whole (being
        # answered, or a WebSocket) is never a victim, and quick callers (joins, the admin API's
        # own clients) are never the oldest senders.
        limits = self.limits
        count = len(self.connections)
        if count >= limits.max_connections:  # closing ones give their descriptor back this tick
            count = sum(1 for c in self.connections if not _closing(c))
        self._in_reserve = count >= limits.max_connections
        if count >= limits.max_connections + limits.reserve and not self._evict_one():
            if limits.reserved_for is not None and (self._limbo_count() < limits.reserve
                                                    or self._evict_oldest_limbo()):
                # Nothing to evict yet (every sender is young): decide at the head, not now. A caller
                # of a reserved route then sheds the oldest slow sender of an app path (any age);
                # anything else is refused (503) — at most ``reserve`` connections wait like this,
                # the oldest giving way to a newcomer (a quick caller's head is read long before
                # ``reserve`` newer connections arrive; a crowd's silent ones are not).
                self._limbo = True
                super().connection_made(transport)
                self._sending_since = self.loop.time()
                self._arm_head_timer()
                return
            # Refused before anything is read or allocated: the descriptor is released at once.
            self._refused = True
            self.transport = transport
            transport.write(RESPONSE_503)
            transport.close()
            _note("connection cap", "listener at its connection cap (%d): refusing", self.limits.max_connections)
            return
        super().connection_made(transport)
        self._sending_since = self.loop.time()
        self._arm_head_timer()

    def _evict_one(self) -> bool:
        """Close one connection to make room: first one already answered whose client is still
        sending the rest of its body (a refused webhook, any age: nothing is lost), else the one
        sending its request the longest (past ``evictable_after_s``). False when there is none."""
        now = self.loop.time()
        oldest: BoundedHttpTools | None = None
        for conn in self.connections:
            if not isinstance(conn, BoundedHttpTools) or _closing(conn):  # a WebSocket: request arrived whole
                continue
            since = conn._sending_since
            if (since is not None and not conn._in_head and conn.cycle is not None
                    and conn.cycle.response_complete):
                # Answered while its body still arrives. (In its head, ``cycle`` is the previous
                # request's, answered long ago: a keep-alive caller sending its next request.)
                oldest = conn
                break
            if since is None or now - since < self.limits.evictable_after_s:
                continue
            if oldest is None or since < (oldest._sending_since or now):
                oldest = conn
        if oldest is None:
            return False
        _note("evicted", "connection cap: closing the slowest sender to make room")
        if not oldest._in_head and oldest.cycle is not None and oldest.cycle.response_complete:
            oldest._cancel_timers()  # already answered: nothing more to say, just close
            oldest.transport.close()
        else:
            oldest._reject(RESPONSE_408, "request not received in time at the connection cap: %s", 408)
        oldest.connections.discard(oldest)  # its descriptor goes with the close; count it out now
        return True

    def _evict_oldest_limbo(self) -> bool:
        waiting = self._limbo_waiting()
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._sending_since or 0.0)
        _note("evicted", "connection cap: the oldest connection waiting for its head gives way")
        oldest._reject(RESPONSE_503, "connection cap: %s", 503)
        oldest.connections.discard(oldest)
        return True

    def _limbo_waiting(self) -> list[BoundedHttpTools]:
        return [c for c in self.connections if isinstance(c, BoundedHttpTools) and c._limbo and not _closing(c)]

    def _limbo_count(self) -> int:
        return len(self._limbo_waiting())

    def _shed_for_own(self) -> None:
        """A reserved route's caller came in over the budget: close the oldest connection still
        sending a body to a path that is not reserved (HAProxy/nginx shed the same way)."""
        oldest: BoundedHttpTools | None = None
        for conn in self.connections:
            if (conn is self or not isinstance(conn, BoundedHttpTools) or _closing(conn) or conn._own
                    or conn._in_head or conn._sending_since is None):
                continue
            if oldest is None or conn._sending_since < (oldest._sending_since or 0.0):
                oldest = conn
        if oldest is not None:
            _note("shed", "connection budget: closing the oldest slow sender for a reserved route")
            oldest._reject(RESPONSE_408, "request not received in time at the connection cap: %s", 408)
            oldest.connections.discard(oldest)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._dropped:
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
        self._sending_since = self.loop.time()
        if not self._in_head:
            self._in_head = True
            self._head_bytes = 0
            self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._in_head = False
        reserved_for = self.limits.reserved_for
        if reserved_for is not None:
            self._own = reserved_for(self.url.split(b"?", 1)[0].decode("latin-1"))
            if (self._in_reserve or self._limbo) and not self._own:  # not for this path: as at the cap
                self._dropped = True
                self._reject(RESPONSE_503, "connection cap: %s", 503)
                return
            if self._limbo:
                self._limbo = False
                self._shed_for_own()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        self._body_started = self.loop.time()
        self._body_bytes = 0
        self._arm_body_timer()
        if self._rate_timer is not None:
            self._rate_timer.cancel()
        self._rate_timer = self.loop.call_later(self.limits.body_rate_grace_s, self._rate_check)

    def on_body(self, body: bytes) -> None:
        if self._dropped:
            return
        super().on_body(body)
        self._body_bytes += len(body)
        self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self._dropped:
            return
        self._sending_since = None
        for timer in (self._body_timer, self._rate_timer):
            if timer is not None:
                timer.cancel()
        self._body_timer = self._rate_timer = None
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

    def _rate_check(self) -> None:
        """A body below ``min_body_rate`` on average past the grace period, or not whole within
        ``body_deadline_s``, is cut off (408) — a trickle that keeps the idle timer happy included."""
        self._rate_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        elapsed = self.loop.time() - self._body_started
        if self.flow.read_paused:  # the app is not reading yet: the client is not the slow one
            self._rate_timer = self.loop.call_later(1.0, self._rate_check)
            return
        if elapsed >= self.limits.body_deadline_s:
            self._cut_body("request body not complete within %.0f s: closed", self.limits.body_deadline_s)
            return
        if self._body_bytes < self.limits.min_body_rate * elapsed:
            self._cut_body("request body slower than %d bytes/s: closed", self.limits.min_body_rate)
            return
        self._rate_timer = self.loop.call_later(1.0, self._rate_check)

    def _cut_body(self, what: str, arg: float) -> None:
        _note(what, what, arg)
        self._cancel_timers()
        assert self.cycle is not None
        if not self.cycle.response_started:
            self.transport.write(RESPONSE_408)
        self.cycle.disconnected = True
        self.cycle.message_event.set()
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer, self._rate_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._rate_timer = None

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


def _closing(conn: object) -> bool:
    transport = getattr(conn, "transport", None)
    return transport is not None and transport.is_closing()


def bounded_protocol(limits: EdgeLimits) -> type[BoundedHttpTools]:
    """A protocol class for ``uvicorn.Config(http=...)`` carrying ``limits``."""
    return type("BoundedHttpTools", (BoundedHttpTools,), {"limits": limits})


# -- accepting -------------------------------------------------------------------------------------
#: Connections taken from the kernel's backlog per event-loop iteration (see :class:`PacedSocket`).
ACCEPTS_PER_TICK = 4


class PacedSocket(socket.socket):
    """A listening socket whose ``accept()`` hands out at most :data:`ACCEPTS_PER_TICK` connections
    per event-loop iteration (nginx's ``multi_accept off``; HAProxy's ``maxaccept``).

    asyncio's selector loop accepts up to the listen backlog (2048) in one go when the listener is
    readable, each taking a descriptor *before* any protocol — and so before the connection budget —
    sees it: a crowd of 500 reconnecting clients under ``ulimit -n 256`` took every descriptor,
    asyncio then stopped accepting for a second (``EMFILE``), and the joins waiting in the backlog
    behind the crowd got nothing. Paced, the budget of :class:`BoundedHttpTools` runs between
    batches (refused or evicted connections give their descriptors back), the loop keeps reading
    the connections it has, and the rest of the crowd waits in the kernel, where it costs us nothing.
    (Windows' proactor accepts one connection at a time already: this override is not used there.)
    """

    _accepted = 0
    _reset_pending = False

    def accept(self) -> tuple[socket.socket, Any]:
        if self._accepted >= ACCEPTS_PER_TICK:
            raise BlockingIOError  # asyncio stops this round; the listener is polled again next tick
        conn = super().accept()
        self._accepted += 1
        if not self._reset_pending:
            self._reset_pending = True
            try:
                asyncio.get_running_loop().call_soon(self._next_tick)
            except RuntimeError:  # accepted outside a loop (tests): no pacing
                self._next_tick()
        return conn

    def _next_tick(self) -> None:
        self._accepted = 0
        self._reset_pending = False


def paced(sock: socket.socket) -> PacedSocket:
    """``sock`` (bound, listening) as a :class:`PacedSocket` (the same descriptor)."""
    out = PacedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    return out


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
