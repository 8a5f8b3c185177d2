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


async def _drive(limit: int, chunks: list[bytes], gap_s: float, deadline_s: float,
                 headers: list[tuple[bytes, bytes]] | None = None) -> tuple[list[dict[str, object]], int]:
    """Run BodyLimit around an app that reads its body with read_body; returns what was sent and the
    number of receive() calls the client side served."""
    import asyncio

    from linkpronto.web.bounded import BodyLimit, read_body

    served = 0

    async def receive() -> dict[str, object]:
        nonlocal served
        if served >= len(chunks):
            await asyncio.sleep(3600)
        await asyncio.sleep(gap_s)
        served += 1
        return {"type": "http.request", "body": chunks[served - 1], "more_body": served < len(chunks)}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def app(scope: object, receive_: object, send_: object) -> None:
        body = await read_body(receive_, 10**9)  # type: ignore[arg-type]
        await send_({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send_({"type": "http.response.body", "body": body})  # type: ignore[operator]

    scope = {"type": "http", "path": "/_linkpronto/api/join", "headers": headers or []}
    await BodyLimit(app, lambda p: limit, deadline_s=deadline_s)(scope, receive, send)  # type: ignore[arg-type]
    return sent, served


async def test_body_limit_streams_cuts_and_deadlines() -> None:
    # Within the limit and in time: passes through.
    sent, _ = await _drive(100, [b"a" * 40, b"b" * 40], 0.0, 5)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"a" * 40 + b"b" * 40
    # Past the limit while streaming: 413 after the chunk that crossed it, nothing more read.
    sent, served = await _drive(100, [b"a" * 60] * 1000, 0.0, 5)
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413] and served == 2
    # A declared length above the limit: 413 before reading anything.
    sent, served = await _drive(100, [b"a"], 0.0, 5, headers=[(b"content-length", b"1000000")])
    assert sent[0]["status"] == 413 and served == 0
    # A trickle: 408 at the deadline.
    sent, _ = await _drive(100, [b"a"] * 50, 0.05, 0.3)
    assert sent[0]["status"] == 408 and len(sent) == 2


def test_serve_never_logs_httpx_request_urls() -> None:
    """Issue 19, LOW 12: httpx's INFO lines carry ``?access_token=<JWT>``; serve keeps them out."""
    import logging

    from linkpronto.production import configure_logging

    logger = logging.getLogger("httpx")
    before = logger.level
    try:
        logger.setLevel(logging.NOTSET)
        configure_logging()
        assert not logger.isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
        assert logger.isEnabledFor(logging.WARNING)
    finally:
        logger.setLevel(before)
