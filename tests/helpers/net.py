"""Small network helpers for tests: free ports, a threaded HTTP server, and a TCP relay that can be
switched on and off."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    """``handler`` on a free 127.0.0.1 port (``server.server_address[1]``), one thread per request, until
    the block ends. It looks for the stop every 10 ms (the standard library's 0.5 s made every test
    using such a server half a second longer)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True,
                              name=f"http-{server.server_address[1]}")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Relay:
    """A TCP relay on 127.0.0.1 standing in for a tunnel edge in tests.

    ``target`` None: connections are accepted and closed at once (an edge whose agent is gone).
    Otherwise bytes are relayed both ways to ``127.0.0.1:target``.
    """

    def __init__(self, target: int | None) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port or 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._conns):
            t.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            if self.target is None:
                writer.close()
                return
            try:
                ur, uw = await asyncio.open_connection("127.0.0.1", self.target)
            except OSError:
                writer.close()
                return

            async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                with contextlib.suppress(Exception):
                    while data := await r.read(65536):
                        w.write(data)
                        await w.drain()
                with contextlib.suppress(Exception):
                    w.close()

            await asyncio.gather(pump(reader, uw), pump(ur, writer))
        finally:
            self._conns.discard(task)
