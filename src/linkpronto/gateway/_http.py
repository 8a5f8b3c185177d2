"""Forward one ASGI HTTP request to an upstream and stream the answer back.

One :class:`HttpForwarder` per proxy owns one connection pool (:mod:`linkpronto.gateway._client`) that
every request reuses. Small answers with a ``Content-Length`` go back in one ASGI message; anything
else (chunked, SSE, large files) is relayed chunk by chunk as it arrives, and an answer of unknown
length stops as soon as the browser goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import httptools
from starlette.types import Message, Receive, Scope, Send

from linkpronto.gateway._client import Connection, Pool, UpstreamError
from linkpronto.gateway._headers import HOP_BY_HOP, RawHeaders, Upstream, connection_tokens

log = logging.getLogger("linkpronto.gateway")

ResponseHeaderHook = Callable[[RawHeaders], RawHeaders]

# Bodies up to this size with a Content-Length are read whole and written in one ASGI message.
_SMALL_BODY = 64 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Never forwarded as received: the forwarder frames the body itself, and uvicorn already answered
# any "Expect: 100-continue" towards the browser.
_REFRAMED = frozenset({b"content-length", b"expect"})
_EXCHANGE_ERRORS = (UpstreamError, OSError, httptools.HttpParserError)


class ClientGone(Exception):
    """The browser went away while we were still reading its request body."""


class UpstreamUnavailable(Exception):
    """The upstream refused or timed out before answering; ``status`` is what the client gets."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HttpForwarder:
    """A pooled, streaming HTTP/1.1 forwarder."""

    def __init__(self, *, connect_timeout: float = 5.0, read_timeout: float | None = None) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool = Pool()

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        upstream: Upstream,
        headers: RawHeaders,
        *,
        response_hook: ResponseHeaderHook | None = None,
    ) -> None:
        """Send the request upstream with ``headers`` (already rewritten) and relay the response.

        Raises :class:`UpstreamUnavailable` before anything was sent to the client, so the caller can
        answer with its own error page; returns quietly when the client disconnects.
        """
        first = await receive()
        if first["type"] == "http.disconnect":
            return
        method: str = scope["method"]
        body: bytes = first.get("body", b"")
        streamed = bool(first.get("more_body", False))
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        qs: bytes = scope.get("query_string", b"")
        parts = [method.encode("ascii"), b" ", raw_path, b"?" + qs if qs else b"", b" HTTP/1.1\r\n"]
        declared_length: bytes | None = None
        for name, value in headers:
            if name in _REFRAMED:
                if name == b"content-length":
                    declared_length = value
                continue
            parts += (name, b": ", value, b"\r\n")
        if not streamed:
            if body or method in _BODY_METHODS:
                parts += (b"content-length: ", str(len(body)).encode("ascii"), b"\r\n")
        elif declared_length is not None:
            parts += (b"content-length: ", declared_length, b"\r\n")
        else:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        chunked = streamed and declared_length is None

        conn: Connection | None = None
        for attempt in (0, 1):
            try:
                conn = await self._pool.acquire(upstream.host, upstream.port, self._connect_timeout)
            except UpstreamError as exc:
                raise UpstreamUnavailable(504 if exc.timeout else 502, exc.reason) from exc
            reused = conn.requests > 0
            head_ready = conn.begin()
            try:
                if not streamed:
                    conn.write(head + body if body else head)
                else:
                    conn.write(head)
                    await _write_stream(conn, _stream_body(body, receive), chunked)
                if self._read_timeout is None:
                    await head_ready
                else:
                    async with asyncio.timeout(self._read_timeout):
                        await head_ready
                break
            except ClientGone:
                self._pool.discard(conn)
                return
            except TimeoutError as exc:
                self._pool.discard(conn)
                raise UpstreamUnavailable(504, "read timeout") from exc
            except _EXCHANGE_ERRORS as exc:
                self._pool.discard(conn)
                # A kept-alive connection the upstream closed meanwhile: replay once on a new one.
                if reused and not streamed and attempt == 0:
                    continue
                raise UpstreamUnavailable(502, type(exc).__name__) from exc
        assert conn is not None
        try:
            await self._relay(scope, receive, send, conn, response_hook)
        finally:
            self._pool.release(conn)

    async def _relay(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        conn: Connection,
        hook: ResponseHeaderHook | None,
    ) -> None:
        raw = conn.headers
        drop = connection_tokens(raw) | HOP_BY_HOP
        out: RawHeaders = []
        length: int | None = None
        for name, value in raw:
            if name in drop:
                continue
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    length = int(value)
            out.append((name, value))
        if hook is not None:
            out = hook(out)
        start: Message = {"type": "http.response.start", "status": conn.status, "headers": out}
        if not conn.has_body(scope["method"] == "HEAD"):
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if length is not None and length <= _SMALL_BODY:
            # The common case (pages, JSON, small assets): one read, two writes, no extra task.
            try:
                chunks = [chunk async for chunk in conn.body()]
            except UpstreamError as exc:
                raise UpstreamUnavailable(502, exc.reason) from exc
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": False})
            return
        await send(start)
        if length is not None:
            await _pump(conn, send)
            return
        # Unknown length (chunked, SSE, long polls): relay every chunk as it comes and stop as soon
        # as the client goes away, otherwise an endless event stream would outlive its reader.
        pump = asyncio.ensure_future(_pump(conn, send))
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, gone):
                if not task.done():
                    task.cancel()
            for task in (pump, gone):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if pump.done() and not pump.cancelled():
            pump.result()


async def _pump(conn: Connection, send: Send) -> None:
    try:
        async for chunk in conn.body():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except UpstreamError:
        # The upstream broke off mid-answer. The status is gone already; ending the response
        # "normally" would tell the browser a truncated body is complete, so let the server drop
        # the connection instead (uvicorn closes it when the app returns without finishing).
        log.warning("upstream broke off a response mid-body")
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _write_stream(conn: Connection, chunks: AsyncIterator[bytes], chunked: bool) -> None:
    async for chunk in chunks:
        if chunked:
            conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            conn.write(chunk)
        await conn.drain()
    if chunked:
        conn.write(b"0\r\n\r\n")


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _stream_body(first: bytes, receive: Receive) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk: bytes = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def send_simple(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: RawHeaders | None = None,
) -> None:
    headers: RawHeaders = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
