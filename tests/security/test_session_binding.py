"""Issue 19, HIGH 1 (units): the dashboard session is the cookie *and* the origin-bound secret;
``dashboard-login`` is bearer-only; logout; absolute and idle lifetimes."""

from __future__ import annotations

import httpx
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from linkpronto.web.admin import AdminGuard
from linkpronto.web.session import SESSION_IDLE_S, SESSION_TTL_S, DashboardSessions, cookie_name

PORT = 7999
TOKEN = "t" * 43
BASE = f"http://127.0.0.1:{PORT}"


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(sessions: DashboardSessions) -> httpx.AsyncClient:
    guard = AdminGuard(_app, token=TOKEN, port_getter=lambda: PORT, token_path="admin-token", sessions=sessions)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url=BASE)


async def _signed_in(c: httpx.AsyncClient, sessions: DashboardSessions) -> tuple[str, str]:
    login = sessions.new_login()
    res = await c.get("/", params={"token": login})
    assert res.status_code == 303
    location = res.headers["location"]
    assert location.startswith("/#lp-session=")
    cookie = res.cookies[cookie_name(PORT)]
    c.cookies.clear()  # each request below says exactly what it carries
    return cookie, location.split("=", 1)[1]


async def test_the_cookie_alone_is_refused_and_the_pair_is_accepted() -> None:
    sessions = DashboardSessions()
    async with _client(sessions) as c:
        cookie, secret = await _signed_in(c, sessions)
        jar = {"Cookie": f"{cookie_name(PORT)}={cookie}", "Origin": BASE}
        for method, path in (("GET", "/api/consultation-links"), ("POST", "/api/consultation-links"),
                             ("GET", "/api/status/stream"), ("POST", "/api/dashboard-login")):
            assert (await c.request(method, path, headers=jar)).status_code == 401, path
            wrong = {**jar, "X-Linkpronto-Session": secret[:-1] + ("A" if secret[-1] != "A" else "B")}
            assert (await c.request(method, path, headers=wrong)).status_code == 401, path
        good = {**jar, "X-Linkpronto-Session": secret}
        assert (await c.get("/api/consultation-links", headers=good)).status_code == 200
        assert (await c.post("/api/consultation-links", headers=good)).status_code == 200
        # the secret without the cookie is nothing either
        assert (await c.get("/api/status", headers={"X-Linkpronto-Session": secret})).status_code == 401
        # bearer-only: a session cannot mint another one-time URL; the admin token can
        assert (await c.post("/api/dashboard-login", headers=good)).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert (await c.post("/api/dashboard-login", headers=bearer)).status_code == 200


async def test_logout_ends_the_session() -> None:
    sessions = DashboardSessions()
    async with _client(sessions) as c:
        cookie, secret = await _signed_in(c, sessions)
        good = {"Cookie": f"{cookie_name(PORT)}={cookie}", "Origin": BASE, "X-Linkpronto-Session": secret}
        assert (await c.post("/api/logout", headers={**good, "Origin": "http://127.0.0.1:1"})).status_code == 403
        res = await c.post("/api/logout", headers=good)
        assert res.status_code == 200
        assert cookie_name(PORT) in res.headers.get("set-cookie", "") and "Max-Age=0" in res.headers["set-cookie"]
        assert (await c.get("/api/status", headers=good)).status_code == 401


async def test_sessions_expire_when_idle_and_absolutely() -> None:
    clock = Clock()
    sessions = DashboardSessions(clock=clock)
    cookie, secret = sessions.redeem(sessions.new_login()) or ("", "")
    clock.now += SESSION_IDLE_S - 1
    assert sessions.valid(cookie, secret)  # used: the idle timer starts again
    clock.now += SESSION_IDLE_S - 1
    assert sessions.valid(cookie, secret)
    clock.now += SESSION_IDLE_S + 1
    assert not sessions.valid(cookie, secret)  # idle too long
    cookie, secret = sessions.redeem(sessions.new_login()) or ("", "")
    start = clock.now
    while clock.now < start + SESSION_TTL_S - 60:
        clock.now += SESSION_IDLE_S / 2
        assert sessions.valid(cookie, secret) == (clock.now < start + SESSION_TTL_S)
    clock.now = start + SESSION_TTL_S
    assert not sessions.valid(cookie, secret)  # 12 h, however busy


async def test_non_ascii_tokens_and_secrets_are_refused_not_500() -> None:
    """Found by the fuzz run: ``hmac.compare_digest`` raises on non-ASCII str (was a 500)."""
    sessions = DashboardSessions()
    async with _client(sessions) as c:
        cookie, _secret = await _signed_in(c, sessions)
        assert (await c.get("/", params={"token": "ñ"})).status_code == 401
        odd = {"Cookie": f"{cookie_name(PORT)}={cookie}", "X-Linkpronto-Session": "ñ".encode()}
        assert (await c.get("/api/status", headers=odd)).status_code == 401
