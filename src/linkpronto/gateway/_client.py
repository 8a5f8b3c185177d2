"""A small, pooled HTTP/1.1 client for talking to upstreams on this machine, built for proxying.

Why not ``httpx``: per request it costs several times the whole round trip to a local server (its
pool machinery is generic over async libraries), and its ``AsyncClient`` keeps a cookie jar (a proxy
shared by many browsers must never replay one visitor's cookies to another), follows redirects, reads
proxy settings from the environment and logs every URL at INFO (``/rtc/validate`` URLs carry access
tokens). A proxy needs none of that: bytes in, bytes out, connections reused.

One :class:`Connection` is an ``asyncio.Protocol`` with an ``httptools`` (llhttp) response parser;
response bodies arrive in a bounded buffer (reading pauses above :data:`HIGH_WATER`), request bodies
are written with the transport's own flow control. :class:`Pool` keeps idle keep-alive connections
per upstream address, newest first, and drops them after :data:`KEEPALIVE_EXPIRY` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import cast

import httptools

RawHeaders = list[tuple[bytes, bytes]]

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
KEEPALIVE_EXPIRY = 30.0
MAX_IDLE_PER_UPSTREAM = 64


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the exchange. ``before_response`` tells whether
    anything of an answer had arrived (if not, the caller may still answer with its own page)."""

    def __init__(self, reason: str, *, before_response: bool, timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.before_response = before_response
        self.timeout = timeout


class Connection(asyncio.Protocol):
    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.requests = 0
        self._loop = asyncio.get_running_loop()
        self._head: asyncio.Future[None] | None = None
        self._headers: RawHeaders = []
        self.status = 0
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._keep_alive = False
        self._until_eof = False
        self._error: Exception | None = None
        self._paused_reading = False
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without inheriting from it.
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost finishes the bookkeeping

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._head is not None and self._head.done() and not self._complete and self._until_eof:
            self._complete = True  # a body delimited by the end of the connection (RFC 9112 §6.3)
            self._wake()
        elif not self._complete:
            self._fail(exc or ConnectionResetError("upstream closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("upstream closed the connection"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status < 200 and self.status != 101:
            # An interim answer (100 Continue, 103 Early Hints): wait for the final one.
            self._headers = []
            return
        has_length = False
        chunked = False
        for name, value in self._headers:
            if name == b"content-length":
                has_length = True
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        self._until_eof = not has_length and not chunked and self.status not in (204, 304)
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status < 200 and self.status != 101:
            return
        # llhttp resets its flags once the message is over, so ask now, not at release time.
        self._keep_alive = self.parser.should_keep_alive()
        self._complete = True
        self._wake()

    # --- used by the forwarder --------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        if self._error is None:
            self._error = exc
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        self._wake()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def begin(self) -> asyncio.Future[None]:
        """Reset per-exchange state before a request is written."""
        self.requests += 1
        self._head = self._loop.create_future()
        self._headers = []
        self.status = 0
        self._chunks.clear()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._until_eof = False
        self._error = None
        return self._head

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("upstream closed the connection")
        if self._write_paused:
            self._drain = self._loop.create_future()
            await self._drain

    @property
    def headers(self) -> RawHeaders:
        return self._headers

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed and self._error is None

    def has_body(self, head_request: bool) -> bool:
        return not head_request and self.status not in (204, 304)

    async def body(self) -> AsyncIterator[bytes]:
        """The response body as it arrives; raises :class:`UpstreamError` if it is cut short."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused_reading and self._buffered < LOW_WATER and self.transport is not None:
                    self._paused_reading = False
                    self.transport.resume_reading()
                yield chunk
            if self._complete:
                return
            if self._error is not None:
                raise UpstreamError(f"{type(self._error).__name__}", before_response=False)
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Pool:
    """Idle keep-alive connections per ``(host, port)``."""

    def __init__(self, *, max_idle: int = MAX_IDLE_PER_UPSTREAM, expiry: float = KEEPALIVE_EXPIRY) -> None:
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._max_idle = max_idle
        self._expiry = expiry
        self._all: set[Connection] = set()

    async def acquire(self, host: str, port: int, connect_timeout: float) -> Connection:
        key = (host, port)
        idle = self._idle.get(key)
        if idle:
            now = time.monotonic()
            while idle:
                conn = idle.pop()
                if not conn.closed and now - conn.idle_since < self._expiry:
                    return conn
                conn.close()
                self._all.discard(conn)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(lambda: Connection(key), host, port)
        except TimeoutError as exc:
            raise UpstreamError("connect timeout", before_response=True, timeout=True) from exc
        except OSError as exc:
            raise UpstreamError(type(exc).__name__, before_response=True) from exc
        self._all.add(protocol)
        return protocol

    def release(self, conn: Connection) -> None:
        if not conn.reusable:
            conn.close()
            self._all.discard(conn)
            return
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) >= self._max_idle:
            conn.close()
            self._all.discard(conn)
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def discard(self, conn: Connection) -> None:
        conn.abort()
        self._all.discard(conn)

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
