"""Issue 19, MEDIUM 2 and 3: slow bodies (a chunked trickle that keeps the idle timer happy) to the
app's paths through the public listener and to the unauthenticated LiveKit webhook on the admin
listener, under a low RLIMIT_NOFILE (public cap 48): patients still join, the app's drop-in still
answers, and the trickles are cut off by the minimum-rate rule."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from helpers.net import free_port
from linkpronto.web.bounded import BODY_RATE_GRACE_S
from security.child import JOIN, nofile, orchestrator_child, wait_ready

pytestmark = pytest.mark.slow
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.contextmanager
def app_upstream() -> Iterator[int]:
    """A stand-in for the clinic's app: reads whatever body arrives, answers 200."""

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                    self.rfile.read(size + 2)
                self.rfile.readline()
            elif n:
                self.rfile.read(n)
            body = b"<!doctype html><title>app</title>ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # linkpronto cut the slow body and closed our side: expected here

    port = free_port()
    srv = Quiet(("127.0.0.1", port), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield port
    finally:
        srv.shutdown()
        srv.server_close()


async def open_trickles(port: int, path: str, n: int) -> list[Conn]:
    conns = []
    for _ in range(n):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue
        w.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTransfer-Encoding: chunked\r\n"
                "Content-Type: application/json\r\n\r\n".encode())
        conns.append((r, w))
    return conns


def trickle(conns: list[Conn]) -> None:
    for _, w in conns:
        if not w.is_closing():
            w.write(b"1\r\na\r\n")  # one byte a second: never idle, far below the minimum rate


async def closed(conn: Conn) -> bool:
    reader, writer = conn
    if writer.is_closing() or reader.at_eof():
        return True
    try:
        data = await asyncio.wait_for(reader.read(4096), 0.05)
    except TimeoutError:
        return False
    except OSError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 408")


async def test_slow_bodies_to_app_paths_and_the_webhook_never_shut_out_joins_or_the_dropin(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    with app_upstream() as app_port, orchestrator_child(
        tmp_path / "data", livekit_double.url, preexec=nofile(256), LINKPRONTO_APP_PORT=str(app_port)
    ) as child:
        wait_ready(child)
        admin_port = int(child.admin_url.rsplit(":", 1)[1])
        bearer = {"Authorization": f"Bearer {child.token}"}
        fresh = httpx.Limits(max_keepalive_connections=0)  # every call a new connection, like a new visitor
        async with httpx.AsyncClient(base_url=child.admin_url, headers=bearer, timeout=10, limits=fresh) as admin, \
                httpx.AsyncClient(base_url=child.public_url, timeout=10, limits=fresh) as public:
            link = (await admin.post("/api/consultation-links", json={"professional_id": "p", "max_uses": 1000})).json()
            token = link["url"].rstrip("/").rsplit("/", 1)[1]
            assert (await public.post(JOIN, json={"token": token})).status_code == 200
            public_slow = await open_trickles(child.public_port, "/api/upload", 60)
            public_slow += await open_trickles(child.public_port, "/", 40)
            admin_slow = await open_trickles(admin_port, "/api/livekit/webhook", 64)
            await asyncio.sleep(0.5)
            started = time.monotonic()
            joins: list[int] = []
            dropins: list[int] = []
            while time.monotonic() - started < 6:
                trickle(public_slow + admin_slow)
                for _ in range(3):
                    joins.append((await public.post(JOIN, json={"token": token})).status_code)
                res = await admin.post("/api/generate-consultation-token",
                                       json={"professionalId": "p", "waitS": 0})
                dropins.append(res.status_code)
                await asyncio.sleep(0.5)
            # Past the grace period every trickle is below the minimum rate: cut off.
            while time.monotonic() - started < BODY_RATE_GRACE_S + 4:
                trickle(public_slow + admin_slow)
                await asyncio.sleep(1)
            still_open = [c for c in public_slow + admin_slow if not await closed(c)]
            for _, w in public_slow + admin_slow:
                w.close()
        assert joins and all(s == 200 for s in joins), joins
        assert dropins and all(s in (200, 202) for s in dropins), dropins
        assert not still_open, f"{len(still_open)} trickling bodies still open"
        assert "Traceback" not in child.log()


async def test_500_reconnecting_slow_bodies_never_shut_out_joins(tmp_path: Path, livekit_double: RunningDouble) -> None:
    """Finding 3 at scale: 500 slow bodies to an app path, each re-opened as soon as the server closes
    or answers it, on a public listener capped at 48 by ``ulimit -n 256`` (ten times its budget).
    Accepts are paced, so the crowd waits in the kernel instead of taking every descriptor; a join
    over the budget sheds the oldest slow sender. Every join answers 200; the process never runs
    out of descriptors (asyncio's ``accept() out of system resource``)."""
    from security.crowd import BodyCrowd

    with app_upstream() as app_port, orchestrator_child(
        tmp_path / "data", livekit_double.url, preexec=nofile(256), LINKPRONTO_APP_PORT=str(app_port)
    ) as child:
        wait_ready(child)
        bearer = {"Authorization": f"Bearer {child.token}"}
        link = httpx.post(child.admin_url + "/api/consultation-links", headers=bearer, timeout=30,
                          json={"professional_id": "p", "max_uses": 0}).json()
        token = link["url"].rstrip("/").rsplit("/", 1)[1]
        joins: list[int | str] = []
        with BodyCrowd(child.public_port, 500, "/api/upload") as crowd:
            await asyncio.sleep(1)
            async with httpx.AsyncClient(base_url=child.public_url, timeout=10) as public:
                started = time.monotonic()
                while time.monotonic() - started < 6:
                    try:
                        joins.append((await public.post(JOIN, json={"token": token})).status_code)
                    except httpx.HTTPError as exc:
                        joins.append(type(exc).__name__)
            held = max(crowd.samples or [0])
        log = child.log()
    assert held > 100, held  # the crowd really was there (most of it waiting in the kernel's backlog)
    assert len(joins) >= 20 and all(s == 200 for s in joins), joins
    assert "Too many open files" not in log and "out of system resource" not in log
    assert "Traceback" not in log
