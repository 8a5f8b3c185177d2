"""The public listener's routing (issue 9, point 1): linkpronto owns ``/_linkpronto/`` and
``/.well-known/linkpronto/``; with an app, every other path is the app's, normalised once.

The app is an echo server in this process (a thread), reached through linkpronto's public listener;
requests are written on the wire exactly as the test spells them (a raw socket: httpx would resolve
``..`` and ``.`` itself before sending).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import run_lp, settings_for
from helpers.net import serve_http

pytestmark = pytest.mark.slow  # the LiveKit double is a process


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        doc = {"served_by": "app", "method": self.command, "path": self.path,
               "via": self.headers.get_all("X-Linkpronto-Via")}
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def echo_app() -> Iterator[int]:
    with serve_http(_Echo) as server:
        yield int(server.server_address[1])


def _raw_request(port: int, method: str, target: str, headers: dict[str, str] | None = None,
                body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request with ``target`` sent byte for byte; returns (status, body)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        out, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            out, buf = out + buf[:size], buf[size + 2:]
        rest = out
    return status, rest


async def raw_request(port: int, method: str, target: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, bytes]:
    """:func:`_raw_request` off the event loop (the listener runs on this loop)."""
    return await asyncio.to_thread(_raw_request, port, method, target, headers, body)


APP_PATHS = ("/api/generate-consultation-token", "/api/public/professional", "/api/consultation-links/x",
             "/api/status", "/c/x", "/rtc/x", "/rtc", "/healthz", "/twirp/x", "/api/shutdown")


async def test_with_an_app_every_other_path_is_the_apps_normalised_and_marked_public(
    tmp_path: Path, livekit_double: RunningDouble, echo_app: int
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url, app={"port": echo_app})
    async with run_lp(settings) as lp:
        port = lp.running.public_port
        for path in APP_PATHS:
            for method in ("GET", "POST"):
                status, body = await raw_request(port, method, path, body=b"{}")
                assert status == 200, (method, path, body)
                doc = json.loads(body)
                assert doc == {"served_by": "app", "method": method, "path": path, "via": ["public"]}
        # Normalised once, and the app receives the normalised path.
        for sent, arrives in (
            ("/api/./generate-consultation-token", "/api/generate-consultation-token"),
            ("//api//generate-consultation-token", "/api/generate-consultation-token"),
            ("/api/x/../generate-consultation-token", "/api/generate-consultation-token"),
            ("/api/%67enerate-consultation-token?a=1", "/api/generate-consultation-token?a=1"),
            ("/x/%2fy", "/x/%2Fy"),
        ):
            status, body = await raw_request(port, "POST", sent, body=b"{}")
            assert status == 200 and json.loads(body)["path"] == arrives, (sent, body)
        # A client's own X-Linkpronto-Via is replaced, never passed on.
        status, body = await raw_request(port, "POST", "/api/generate-consultation-token",
                                   {"X-Linkpronto-Via": "local"}, b"{}")
        assert json.loads(body)["via"] == ["public"]
        # linkpronto's own prefixes stay linkpronto's — also when spelled with dot segments.
        for target in ("/_linkpronto/healthz", "/x/../_linkpronto/healthz", "/_linkpronto/./healthz",
                       "//_linkpronto//healthz"):
            status, body = await raw_request(port, "GET", target)
            assert (status, body) == (200, b"ok"), target
        status, body = await raw_request(port, "GET", "/.well-known/linkpronto/probe?nonce=n1")
        assert status == 200 and json.loads(body)["nonce"] == "n1"
        # Out of the LiveKit prefix is out of LiveKit: ../ cannot reach /twirp through it.
        for target in ("/_linkpronto/livekit/twirp/livekit.RoomService/ListRooms",
                       "/_linkpronto/livekit/debug/rooms"):
            assert (await raw_request(port, "POST", target))[0] == 404, target
        assert (await raw_request(port, "POST", "/_linkpronto/livekit/rtc/../../twirp/x"))[0] == 404
        # A malformed escape is refused rather than read two ways.
        assert (await raw_request(port, "GET", "/api/%zz"))[0] == 400
        # LiveKit signalling lives under /_linkpronto/livekit.
        await lp.wait_state("ready", timeout=15)
        status, body = await raw_request(port, "GET", "/_linkpronto/livekit/rtc/validate?access_token=forged")
        assert status == 401, body


async def test_without_an_app_c_is_a_short_alias_and_the_rest_is_404(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=15)
        link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).json()
        token = link["url"].rsplit("/", 1)[1]
        assert link["url"].endswith("/c/" + token)
        port = lp.running.public_port
        for target in (f"/c/{token}", f"/_linkpronto/c/{token}", f"/x/../c/{token}"):
            status, body = await raw_request(port, "GET", target)
            assert status == 200 and b"<html" in body.lower(), target
        for target in ("/api/generate-consultation-token", "/api/status", "/healthz", "/rtc", "/twirp/x"):
            assert (await raw_request(port, "GET", target))[0] == 404, target
