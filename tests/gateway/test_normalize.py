"""Path normalisation (RFC 3986 §6.2.2 and §5.2.4) used by the public listener before routing."""

from __future__ import annotations

import pytest

from linkpronto.gateway.normalize import normalize_path


@pytest.mark.parametrize(("raw", "normal"), [
    ("/", "/"), ("/a/b/../c/./d", "/a/c/d"), ("/..", "/"), ("/a/..", "/"), ("/a/.", "/a/"),
    ("//a//b", "/a/b"), ("/a//", "/a/"), ("/%2e%2E/x", "/x"), ("/%7e%41", "/~A"), ("/a%2fb", "/a%2Fb"),
    ("/%e2%82%ac", "/%E2%82%AC"), ("/a/%zz", None), ("/a/%4", None), ("", "/"),
])
def test_normalize_path_follows_rfc3986(raw: str, normal: str | None) -> None:
    assert normalize_path(raw) == normal


def test_loggable_path_never_carries_a_link_token() -> None:
    from linkpronto.gateway._headers import loggable_path

    token = "Zm9vYmFyYmF6cXV4cXV1eHh5enp5"
    assert token not in loggable_path(f"/consultations/client/{token}")
    assert token not in loggable_path(f"/_linkpronto/c/{token}")
    assert loggable_path("/api/status") == "/api/status"
    assert loggable_path("/consultations/client/x/y") == "/consultations/client/…"
