"""Fixtures for the tunnel tests: a real sshd, a stand-in for the public listener, leftover checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest

from conftest import require
from fixtures.sshd import SshServer, sshd_available

ORIGIN_BODY = b"linkpronto-origin-ok"


class Origin:
    """A tiny HTTP server standing in for linkpronto's public listener (what a tunnel points at)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(ORIGIN_BODY)))
                self.end_headers()
                self.wfile.write(ORIGIN_BODY)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def leftover_children() -> list[psutil.Process]:
    """Our descendants, except the supervisor's long-lived reaper helper."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "_reaper" in cmdline:
            continue
        out.append(child)
    return out


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def sshd() -> Iterator[SshServer]:
    require(sshd_available(), "openssh-server (/usr/sbin/sshd) and the ssh client")
    server = SshServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test when a child process it started is still alive afterwards.

    Children that existed before the test (session fixtures such as the LiveKit double) are ignored.
    """
    before = {p.pid for p in leftover_children()}
    yield
    started = [p for p in leftover_children() if p.pid not in before]
    _, alive = psutil.wait_procs(started, timeout=3)
    assert not alive, f"processes left behind: {[p.cmdline() for p in alive]}"
