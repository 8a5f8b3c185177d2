"""Issue 11, attacks 1 and 2: huge bodies, huge headers, slow clients and descriptor exhaustion
against a real orchestrator (a child process, so its memory and descriptors are its own)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from linkpronto.web.bounded import HEADER_TIMEOUT_S
from security.child import JOIN, nofile, orchestrator_child

pytestmark = pytest.mark.slow

MB = 1024 * 1024


def _send_until_refused(port: int, head: bytes, total: int, chunk: bytes) -> bytes:
    """Send ``head`` then up to ``total`` bytes of ``chunk``; return what the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head)
        sent = 0
        try:
            while sent < total:
                s.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(10)
        answer = b""
        try:
            while len(answer) < 4096:
                part = s.recv(4096)
                if not part:
                    break
                answer += part
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_100mb_body_is_refused_without_growing_memory(tmp_path: Path, livekit_double: RunningDouble) -> None:
    with orchestrator_child(tmp_path / "data", livekit_double.url) as child:
        with httpx.Client(base_url=child.public_url, timeout=10) as c:
            c.get("/_linkpronto/healthz")  # warm up
        before = child.rss()
        declared = f"POST {JOIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {100 * MB}\r\n\r\n"
        answer = _send_until_refused(child.public_port, declared.encode(), 100 * MB, b"x" * 65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        chunked = f"POST {JOIN} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        answer = _send_until_refused(child.public_port, chunked.encode(), 100 * MB, piece)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        growth = child.rss() - before
        assert growth < 30 * MB, f"RSS grew by {growth / MB:.1f} MB"
        assert "Traceback" not in child.log()


def test_100mb_of_headers_is_refused(tmp_path: Path, livekit_double: RunningDouble) -> None:
    with orchestrator_child(tmp_path / "data", livekit_double.url) as child:
        before = child.rss()
        head = b"GET /_linkpronto/healthz HTTP/1.1\r\nHost: x\r\n"
        answer = _send_until_refused(child.public_port, head, 100 * MB, b"X-Filler: " + b"a" * 1000 + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        # One long header line is cut the same way.
        answer = _send_until_refused(child.public_port, head + b"X-Long: ", 100 * MB, b"b" * 65536)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert child.rss() - before < 30 * MB
        # A normal request still works.
        assert httpx.get(child.public_url + "/_linkpronto/healthz", timeout=5).status_code in (200, 404)


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _slow_clients(port: int, n: int) -> list[Conn]:
    conns = []
    for _ in range(n):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue
        w.write(b"GET /_linkpronto/healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append((r, w))
    return conns


async def _closed(conn: Conn) -> bool:
    reader, writer = conn
    if writer.is_closing() or reader.at_eof():
        return True
    try:
        data = await asyncio.wait_for(reader.read(4096), 0.05)
    except TimeoutError:
        return False
    except OSError:
        return True
    return data == b"" or reader.at_eof() or data.startswith(b"HTTP/1.1 408")


async def test_slow_header_clients_are_closed_while_admin_answers(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    with orchestrator_child(tmp_path / "data", livekit_double.url) as child:
        writers = await _slow_clients(child.public_port, 200)
        assert len(writers) == 200
        # And 50 bodies that stop arriving (headers complete, 10 of 1,000 bytes, then silence).
        silent_bodies: list[Conn] = []
        for _ in range(50):
            r, w = await asyncio.open_connection("127.0.0.1", child.public_port)
            w.write(f"POST {JOIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 1000\r\n\r\n{\"token\": ".encode())
            silent_bodies.append((r, w))
        started = time.monotonic()
        async with httpx.AsyncClient(
            base_url=child.admin_url, headers={"Authorization": f"Bearer {child.token}"}
        ) as admin:
            for _ in range(5):
                t0 = time.monotonic()
                assert (await admin.get("/api/status", timeout=1.0)).status_code == 200
                assert time.monotonic() - t0 < 1.0
                await asyncio.sleep(0.5)
            # Keep trickling bytes: a slow client is closed by the deadline, not by silence.
            while time.monotonic() - started < HEADER_TIMEOUT_S + 2:
                for _, w in writers:
                    if not w.is_closing():
                        w.write(b"a")
                await asyncio.sleep(1)
            closed = [await _closed(w) for w in writers]
            bodies_closed = [await _closed(c) for c in silent_bodies]
        for _, w in writers + silent_bodies:
            w.close()
        assert all(closed), f"{closed.count(False)} of 200 slow connections still open"
        assert all(bodies_closed), f"{bodies_closed.count(False)} of 50 silent bodies still open"
        assert "Traceback" not in child.log()


async def test_descriptor_exhaustion_on_public_side_never_stops_admin(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    with orchestrator_child(tmp_path / "data", livekit_double.url, preexec=nofile(256)) as child:
        writers = await _slow_clients(child.public_port, 300)
        writers += await _slow_clients(child.public_port, 50)
        async with httpx.AsyncClient(
            base_url=child.admin_url, headers={"Authorization": f"Bearer {child.token}"}
        ) as admin:
            for _ in range(5):
                res = await admin.get("/api/status", timeout=2.0)
                assert res.status_code == 200
                created = await admin.post("/api/consultation-links", json={"professional_id": "p", "wait_s": 0})
                assert created.status_code in (201, 202), created.text
                await asyncio.sleep(0.2)
        for _, w in writers:
            w.close()
        await asyncio.sleep(0.5)
        log = child.log()
        assert log.count("out of system resource") <= 2, log[-3000:]
        assert len(log) < 200_000




def test_aborted_bodies_leave_no_traceback_and_little_log(tmp_path: Path, livekit_double: RunningDouble) -> None:
    with orchestrator_child(tmp_path / "data", livekit_double.url) as child:
        size_before = len(child.log())
        for i in range(300):
            with socket.create_connection(("127.0.0.1", child.public_port), timeout=10) as s:
                declared = 60_000 if i % 2 else 10 * MB
                s.sendall(f"POST {JOIN} HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n".encode())
                s.sendall(b'{"token": "' + b"a" * 20_000)  # and go away mid-body
        time.sleep(1)
        assert httpx.get(child.public_url + "/_linkpronto/healthz", timeout=5).status_code == 200
        log = child.log()
        assert "Traceback" not in log
        assert len(log) - size_before < 5_000, log[size_before:][-3000:]
