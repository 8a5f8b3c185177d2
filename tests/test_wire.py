"""helpers/wire.py: the request line leaves exactly as written; answers are parsed whole."""

from __future__ import annotations

import pytest

from helpers import wire


def test_the_target_is_sent_verbatim() -> None:
    raw = wire.build_request("GET", "/_linkpronto/livekit/rtc/../%2e%2e//twirp", "h:1", {"X-A": "b"})
    assert raw.startswith(b"GET /_linkpronto/livekit/rtc/../%2e%2e//twirp HTTP/1.1\r\nHost: h:1\r\n")
    assert raw.endswith(b"X-A: b\r\n\r\n")
    with pytest.raises(ValueError, match="spaces or line breaks"):
        wire.build_request("GET", "/a b", "h")


def test_answers_with_length_and_chunked_bodies() -> None:
    fixed = wire.parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX: y\r\n\r\nabcEXTRA")
    assert (fixed.status, fixed.reason, fixed.body, fixed.header("x")) == (404, "Not Found", b"abc", "y")
    chunked = wire.parse_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n")
    assert chunked.status == 200 and chunked.text == "abcde"
    with pytest.raises(ValueError):
        wire.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3")
