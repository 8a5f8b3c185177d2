"""HTTP/1.1 requests that go on the wire exactly as written.

httpx (and browsers) normalise a URL before sending it: ``/rtc/../twirp`` leaves the client as
``/twirp``, so a test written with them never sends what it claims to. Here the request line is the
bytes you pass — dot segments, doubled slashes and percent-escapes included — over a plain TCP
connection, with ``Connection: close``; the answer is read to the end and parsed.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class WireResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def build_request(method: str, target: str, host: str, headers: dict[str, str] | None = None,
                  body: bytes = b"") -> bytes:
    """The request bytes; ``target`` is sent verbatim (it must not contain spaces or CR/LF)."""
    if any(c in target for c in " \r\n"):
        raise ValueError(f"a request target cannot contain spaces or line breaks: {target!r}")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse_response(raw: bytes) -> WireResponse:
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete HTTP response: {raw[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _version, status, *reason = status_line.split(" ", 2)
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in header_lines)]
    response = WireResponse(int(status), reason[0] if reason else "", headers, rest)
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        response.body = _dechunk(rest)
    elif (length := response.header("content-length")) is not None:
        response.body = rest[: int(length)]
    return response


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)


def _split(base_url: str) -> tuple[str, int, str]:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"plain http://host:port only: {base_url!r}")
    port = parts.port or 80
    return parts.hostname, port, parts.netloc


async def send(base_url: str, method: str, target: str, *, headers: dict[str, str] | None = None,
               body: bytes = b"", timeout: float = 10.0) -> WireResponse:
    """Send ``method target`` to ``base_url`` (``http://127.0.0.1:PORT``) as written; for async tests
    whose server runs on the same event loop."""
    host, port, netloc = _split(base_url)

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(build_request(method, target, headers.get("Host", netloc) if headers else netloc,
                                       {k: v for k, v in (headers or {}).items() if k != "Host"}, body))
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()

    return parse_response(await asyncio.wait_for(exchange(), timeout))


def send_sync(base_url: str, method: str, target: str, *, headers: dict[str, str] | None = None,
              body: bytes = b"", timeout: float = 10.0) -> WireResponse:
    """The same for a server in another thread or process."""
    host, port, netloc = _split(base_url)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(build_request(method, target, headers.get("Host", netloc) if headers else netloc,
                                   {k: v for k, v in (headers or {}).items() if k != "Host"}, body))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))
