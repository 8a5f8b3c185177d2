"""A small real HTTP server that records what is POSTed to it (webhook and callback receiver in tests).

``statuses`` is a script of answers: each request takes the next one (200 once it is used up), so a
test can inject a failure (``[500]``) before successes.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from helpers.net import serve_http


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class Receiver:
    port: int = 0
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                snapshot = list(self.requests)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.02)
        raise AssertionError(f"receiver: condition not met; got {[(r.status, r.body[:200]) for r in snapshot]}")


@contextmanager
def run_receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver(statuses=list(statuses or []))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                item = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status,
                                time.monotonic())
                receiver.requests.append(item)
            if receiver.on_request is not None:
                receiver.on_request(item)
            payload = b'{"ok":true}' if status < 300 else b'{"error":"injected"}'
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve_http(Handler) as server:
        receiver.port = server.server_address[1]
        yield receiver
