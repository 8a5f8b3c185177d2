"""Fast tests of the edge's pure parts: the descriptor budget and the log rate limit."""

from __future__ import annotations

import logging

from linkpronto.orchestrator import FD_RESERVE, PUBLIC_MAX_CONNECTIONS, public_connection_cap
from linkpronto.web.bounded import RepeatFilter, own_body_limit


def test_public_cap_leaves_the_admin_reserve() -> None:
    assert public_connection_cap(None) == PUBLIC_MAX_CONNECTIONS
    for limit in (256, 1024, 4096):
        cap = public_connection_cap(limit)
        assert cap * 2 + FD_RESERVE <= limit
    assert public_connection_cap(10**6) == PUBLIC_MAX_CONNECTIONS


def _record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, msg, (), (type(exc), exc, None) if exc else None)


def test_repeat_filter_one_line_per_window_and_no_traceback_for_fd_shortage() -> None:
    now = [0.0]
    f = RepeatFilter(window_s=10, clock=lambda: now[0])
    first = _record("socket.accept() out of system resource", OSError(24, "Too many open files"))
    assert f.filter(first) and first.exc_info is None
    assert not any(f.filter(_record("socket.accept() out of system resource")) for _ in range(1000))
    now[0] = 11
    later = _record("socket.accept() out of system resource")
    assert f.filter(later) and "1000 more" in str(later.msg)
    assert f.filter(_record("another failure"))


def test_own_routes_have_a_body_limit_and_app_routes_do_not() -> None:
    assert own_body_limit("/_linkpronto/api/join") == 64 * 1024
    assert own_body_limit("/_linkpronto/api/device-check") == 64 * 1024
    assert own_body_limit("/api/public/join") is None  # the app's path since 0.2.0
    assert own_body_limit("/api/upload") is None


def test_auto_binds_loopback_unless_lan(tmp_path: object) -> None:
    from linkpronto.config import defaults
    from linkpronto.orchestrator import public_bind_address

    def bind(provider: str) -> str:
        return public_bind_address(defaults(tunnel={"provider": provider}))

    assert bind("auto") == "127.0.0.1"
    assert bind("ngrok") == "127.0.0.1" and bind("cloudflared") == "127.0.0.1" and bind("ssh") == "127.0.0.1"
    assert bind("lan") == "0.0.0.0"


def test_windows_acl_is_the_users_own() -> None:
    from pathlib import Path

    from linkpronto.platform._windows import _owner_only_argv

    argv = _owner_only_argv(Path("."), "CLINIC\\ana", recursive=True)
    assert argv[:3] == ["icacls", ".", "/inheritance:r"]
    assert argv[3:5] == ["/grant:r", "CLINIC\\ana:(OI)(CI)F"] and argv[-1] == "/T"
