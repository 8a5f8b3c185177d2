"""The LiveKit test double (tests/doubles/livekit_server.py) in this process, for the fast tier.

Same HTTP/WebSocket surface as :func:`doubles.livekit_server.run_double`, served by uvicorn on a free
127.0.0.1 port from a background thread with its own event loop — no child process, so a test using it
stays out of the ``slow`` tier. Use the child-process double only where the process itself matters
(killing it, its command line, its exit code).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from doubles.livekit_server import LiveKitDouble
from linkpronto.orchestrator import _EmbeddedServer


@dataclass
class InProcessDouble:
    port: int
    double: LiveKitDouble

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        return self.double.snapshot()

    def reset(self) -> None:
        self.double.calls.clear()
        self.double.ws_requests.clear()
        self.double.validate_calls = self.double.ws_connections = 0


class ThreadServer(_EmbeddedServer):
    """uvicorn served from a test's thread: the product's embedded server, so it touches no signal (they
    belong to the test runner) and stops at once (no 100 ms tick, no fixed pause when nobody is
    connected). Stop it with :func:`stop_thread_server`."""


def stop_thread_server(server: ThreadServer, thread: threading.Thread, timeout: float = 10) -> None:
    server.request_exit()
    thread.join(timeout=timeout)
    if thread.is_alive():
        server.force_exit = True
        thread.join(timeout=5)


@contextlib.contextmanager
def run_double_in_process(keys: dict[str, str], *, startup_timeout: float = 10.0) -> Iterator[InProcessDouble]:
    double = LiveKitDouble(keys)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(double.app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=1)
    server = ThreadServer(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              name="livekit-double-inproc", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process LiveKit double did not start")
            time.sleep(0.005)
        yield InProcessDouble(port, double)
    finally:
        stop_thread_server(server, thread, timeout=5)
        sock.close()
