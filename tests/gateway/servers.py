"""Real servers for the gateway tests: uvicorn on a free 127.0.0.1 port in a thread, and a recording
upstream that stands in for "some HTTP/WebSocket server behind the proxy".

The upstream is not a double of any product: it is a plain Starlette app whose endpoints each exercise
one proxy behaviour (streaming, cookies, redirects, uploads, WebSocket echo with subprotocols and close
codes) and which records what reached it, so a test can prove what the proxy did or did not forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from helpers.inproc import ThreadServer, stop_thread_server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(app: ASGIApp, *, ws: str = "websockets-sansio", port: int | None = None,
          http: str = "httptools", loop: str = "auto", keep_alive: float = 5,
          proxy_headers: bool = True) -> Iterator[RunningServer]:
    """Run ``app`` under a real uvicorn until the block ends (lifespan on, so proxies get closed).
    ``loop="auto"``: uvloop where it exists (not on Windows), else asyncio."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws=ws, http=http,
                            lifespan="on", loop=loop, timeout_graceful_shutdown=2,
                            timeout_keep_alive=keep_alive, proxy_headers=proxy_headers)
    server = ThreadServer(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield RunningServer(port, server, thread)
    finally:
        stop_thread_server(server, thread)


class WithLifespan:
    """Wrap a proxy (which has ``aclose``) so uvicorn's shutdown closes its connection pool."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.app.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


@dataclass
class Recorder:
    """What reached the upstream."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    ws_closes: list[tuple[int, str]] = field(default_factory=list)
    ws_headers: list[dict[str, str]] = field(default_factory=list)
    stream_cancelled: threading.Event = field(default_factory=threading.Event)
    #: /slow-stream holds its second event until the test sets this (at most 10 s).
    release_second: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        with self.lock:
            return [r["path"] for r in self.requests]


def upstream_app(recorder: Recorder) -> Starlette:
    """A small app behind the proxy; every endpoint is one thing a proxy must get right."""

    async def record(request: Request) -> bytes:
        body = await request.body()
        with recorder.lock:
            recorder.requests.append({
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "header_list": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                "body_len": len(body),
            })
        return body

    async def echo(request: Request) -> Response:
        body = await record(request)
        return JSONResponse({
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": dict(request.headers),
            "body": body.decode("utf-8", "replace"),
            "client_port": request.client.port if request.client else None,
        })

    async def cookies(request: Request) -> Response:
        await record(request)
        response = PlainTextResponse("cookies")
        response.set_cookie("a", "1", httponly=True)
        response.set_cookie("b", "2", samesite="strict")
        return response

    async def redirect(request: Request) -> Response:
        await record(request)
        kind = request.query_params.get("to", "relative")
        port = request.url.port
        target = {
            "relative": "/echo?from=redirect",
            "ip": f"http://127.0.0.1:{port}/echo?from=ip",
            "localhost": f"http://localhost:{port}/echo?from=localhost",
            "foreign": "https://example.org/elsewhere",
        }[kind]
        return RedirectResponse(target, status_code=302)

    async def slow_stream(request: Request) -> Response:
        await record(request)

        async def chunks() -> AsyncIterator[bytes]:
            yield b"data: first\n\n"
            # The test releases the second event only once it holds the first: a proxy that buffered
            # the response would hold the first back until here, and the client's read would time out.
            await asyncio.to_thread(recorder.release_second.wait, 10)
            yield b"data: second\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def endless(request: Request) -> Response:
        await record(request)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                n = 0
                while True:
                    yield f"data: {n}\n\n".encode()
                    n += 1
                    await asyncio.sleep(0.05)
            finally:
                recorder.stream_cancelled.set()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def upload(request: Request) -> Response:
        size = 0
        chunks = 0
        async for chunk in request.stream():
            size += len(chunk)
            chunks += 1 if chunk else 0
        with recorder.lock:
            recorder.requests.append({"method": request.method, "path": request.url.path, "query": "",
                                      "headers": dict(request.headers), "header_list": [], "body_len": size})
        return JSONResponse({"size": size, "chunks": chunks,
                             "transfer_encoding": request.headers.get("transfer-encoding"),
                             "content_length": request.headers.get("content-length")})

    async def big(request: Request) -> Response:
        await record(request)
        return Response(b"x" * (1024 * 1024), media_type="application/octet-stream")

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        return Response(b"" if code in (204, 304) else b"status", status_code=code)

    async def catch_all(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("upstream saw " + request.url.path)

    async def ws_echo(ws: WebSocket) -> None:
        with recorder.lock:
            recorder.ws_headers.append({k: v for k, v in ws.headers.items()} | {
                "__path": ws.url.path, "__query": ws.url.query,
                "__via": ws.headers.getlist("x-linkpronto-via")})
        offered = ws.scope.get("subprotocols") or []
        if ws.query_params.get("refuse"):
            await ws.send_denial_response(PlainTextResponse("no entry", status_code=int(ws.query_params["refuse"])))
            return
        chosen = "chosen.v2" if "chosen.v2" in offered else (offered[0] if offered else None)
        await ws.accept(subprotocol=chosen)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    with recorder.lock:
                        recorder.ws_closes.append((int(message.get("code", 1005)),
                                                   str(message.get("reason") or "")))
                    return
                text = message.get("text")
                if text is not None and text.startswith("close:"):
                    _, code, reason = text.split(":", 2)
                    await ws.close(int(code), reason)
                    return
                if text is not None:
                    if text == "headers":
                        await ws.send_text(json.dumps(recorder.ws_headers[-1]))
                    else:
                        await ws.send_text(text)
                else:
                    await ws.send_bytes(message.get("bytes") or b"")
        except WebSocketDisconnect:
            return

    return Starlette(routes=[
        Route("/echo", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]),
        Route("/cookies", cookies),
        Route("/redirect", redirect),
        Route("/slow-stream", slow_stream),
        Route("/endless", endless),
        Route("/upload", upload, methods=["POST", "PUT"]),
        Route("/big", big),
        Route("/status/{code}", status),
        WebSocketRoute("/ws", ws_echo),
        WebSocketRoute("/rtc", ws_echo),
        WebSocketRoute("/rtc/v1", ws_echo),
        WebSocketRoute("/_next/webpack-hmr", ws_echo),
        Route("/{path:path}", catch_all, methods=["GET", "POST", "PUT", "DELETE"]),
    ])
