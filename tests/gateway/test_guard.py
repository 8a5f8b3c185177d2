"""The opt-in guard of app routes (issue 16, point 4): ``app.protected_routes``.

Unit tests of the sealed cookie and the route matcher, then the whole path in-process: linkpronto's
listeners and the LiveKit double in this process, the "app" an HTTP server on a thread that records
what reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import websockets

from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from helpers.net import free_port, serve_http
from linkpronto.gateway.guard import COOKIE, LinkGuard, RouteMatcher, Session

TOKEN_ROUTE = "/api/livekit/token"
LINK_PATH = "/consultations/client/{token}"


# -- units ----------------------------------------------------------------------------------------------
def _guard(status: dict[str, str], uses: dict[str, int], *, now: float = 1_000_000.0,
           secret: bytes = b"k" * 32) -> LinkGuard:
    async def lookup(link_id: str) -> tuple[str, float] | None:
        return (status[link_id], now + 3600) if link_id in status else None

    async def count(link_id: str) -> tuple[bool, str]:
        if status[link_id] != "ready":
            return False, status[link_id]
        uses[link_id] = uses.get(link_id, 0) + 1
        return True, status[link_id]

    return LinkGuard([TOKEN_ROUTE, "/api/*/secret"], secret, lookup, count, secure=lambda: True,
                     clock=lambda: now)


def _cookie_header(set_cookie: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", set_cookie.split(";", 1)[0].encode())]


def test_route_matcher_prefixes_and_globs() -> None:
    m = RouteMatcher([TOKEN_ROUTE, "/api/*/secret"])
    for path in (TOKEN_ROUTE, TOKEN_ROUTE + "/", TOKEN_ROUTE + "/x", "/API/LiveKit/Token", "/api/a/secret"):
        assert m(path), path
    for path in ("/api/livekit/tokens", "/api/livekit", "/", "/api/a/secret2", "/consultations/client/x"):
        assert not m(path), path
    assert not RouteMatcher([])


async def test_cookie_is_sealed_names_no_token_and_expires() -> None:
    status = {"lk_1": "ready"}
    guard = _guard(status, {})
    set_cookie = guard.page_cookie("lk_1", 1_000_000.0 + 60, [])
    assert set_cookie.startswith(COOKIE + "=")
    for attr in ("HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=60"):
        assert attr in set_cookie, attr
    value = set_cookie.split(";", 1)[0].split("=", 1)[1]
    assert guard.unseal(value) is not None
    # Tampering with any part (the link id, the counted flag) breaks the seal.
    assert guard.unseal(value.replace("lk_1", "lk_2")) is None
    assert guard.unseal(value.replace(".0.", ".1.")) is None
    # Another instance (another secret) does not accept it.
    assert _guard(status, {}, secret=b"o" * 32).unseal(value) is None
    # Past its expiry it is nothing.
    assert _guard(status, {}, now=1_000_000.0 + 61).unseal(value) is None


async def test_check_counts_one_use_per_browser_session() -> None:
    status = {"lk_1": "ready"}
    uses: dict[str, int] = {}
    guard = _guard(status, uses)
    refused = await guard.check([])
    assert (refused.allow, refused.status, refused.error and refused.error.code) == (False, 401, "LINK_REQUIRED")
    cookie = guard.page_cookie("lk_1", 1_000_000.0 + 3600, [])
    first = await guard.check(_cookie_header(cookie))
    assert first.allow and first.set_cookie and uses == {"lk_1": 1}
    counted = _cookie_header(first.set_cookie)
    assert (await guard.check(counted)).allow and uses == {"lk_1": 1}
    # Re-opening the page keeps the session (and its counted flag).
    again = guard.page_cookie("lk_1", 1_000_000.0 + 3600, counted)
    assert guard.unseal(again.split(";", 1)[0].split("=", 1)[1]) == Session(
        "lk_1", int(1_000_000.0 + 3600), guard.unseal(counted[0][1].decode().split("=", 1)[1]).sid, True  # type: ignore[union-attr]
    )
    # Used up: the session that got in goes on; a new one is refused.
    status["lk_1"] = "exhausted"
    assert (await guard.check(counted)).allow
    fresh = await guard.check(_cookie_header(guard.page_cookie("lk_1", 1_000_000.0 + 3600, [])))
    assert (fresh.allow, fresh.status, fresh.error and fresh.error.code) == (False, 403, "LINK_GONE")
    # Revoked: nobody.
    status["lk_1"] = "revoked"
    gone = await guard.check(counted)
    assert (gone.allow, gone.status) == (False, 403)
    # A link that no longer exists: as if there were no cookie.
    del status["lk_1"]
    assert (await guard.check(counted)).status == 401


# -- end to end, in-process -----------------------------------------------------------------------------
class _App(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        _App.hits.append(self.path)
        data = json.dumps({"served_by": "app", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


@pytest.fixture
def app_port() -> Iterator[int]:
    _App.hits = []
    with serve_http(_App) as server:
        yield int(server.server_address[1])


def _token_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


async def test_protected_route_needs_a_live_links_page_opened_through_the_gateway(
    tmp_path: Path, livekit_inproc: InProcessDouble, app_port: int
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url,
                            app={"port": app_port, "link_path": LINK_PATH, "protected_routes": [TOKEN_ROUTE]})
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=15)
        base = str(lp.public.base_url)
        async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous, \
                httpx.AsyncClient(base_url=base, timeout=30) as patient, \
                httpx.AsyncClient(base_url=base, timeout=30) as second:
            # Anonymous: refused by the gateway, in the caller's language, and the app never sees it.
            res = await anonymous.post(TOKEN_ROUTE + "?room=any", headers={"Accept-Language": "pt-BR"})
            assert res.status_code == 401, res.text
            assert res.json()["error"]["code"] == "LINK_REQUIRED"
            assert "link de consulta" in res.json()["error"]["message"]
            assert not any(h.startswith(TOKEN_ROUTE) for h in _App.hits)
            # A forged cookie is no better.
            forged = await anonymous.get(TOKEN_ROUTE, headers={"Cookie": f"{COOKIE}=v1.lk_x.9999999999.ab.1.zz"})
            assert forged.status_code == 401
            # A WebSocket to a protected route is refused before any upgrade.
            ws_url = base.replace("http://", "ws://") + TOKEN_ROUTE
            with pytest.raises(websockets.exceptions.InvalidStatus) as refused_ws:
                async with websockets.connect(ws_url, open_timeout=10):
                    pass
            assert refused_ws.value.response.status_code == 403
            # Unprotected app routes are untouched.
            assert (await anonymous.get("/api/public/professional")).status_code == 200

            link = (await lp.admin.post("/api/consultation-links",
                                        json={"professional_id": "p", "max_uses": 1})).json()
            assert link["status"] == "ready", link
            token = _token_of(link["url"])
            page = await patient.get(LINK_PATH.replace("{token}", token))
            assert page.status_code == 200 and page.json()["served_by"] == "app"
            set_cookie = page.headers["set-cookie"]
            assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and token not in set_cookie
            ok = await patient.post(TOKEN_ROUTE + "?room=r")
            assert ok.status_code == 200 and ok.json()["served_by"] == "app", ok.text
            assert (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["uses"] == 1
            # Its later calls count nothing and go on working with the link used up (max_uses=1).
            assert (await patient.post(TOKEN_ROUTE)).status_code == 200
            doc = (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()
            assert (doc["uses"], doc["status"]) == (1, "exhausted")
            # A second browser opening the used-up link gets no cookie, and no way in.
            assert "set-cookie" not in (await second.get(LINK_PATH.replace("{token}", token))).headers
            assert (await second.post(TOKEN_ROUTE)).status_code == 401

            # Revoked: refused again, at once.
            assert (await lp.admin.delete(f"/api/consultation-links/{link['id']}")).status_code == 200
            res = await patient.post(TOKEN_ROUTE)
            assert res.status_code == 403 and res.json()["error"]["code"] == "LINK_GONE", res.text

            # linkpronto's own patient page sets the cookie as well.
            link2 = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).json()
            own = await second.get(f"/_linkpronto/c/{_token_of(link2['url'])}")
            assert own.status_code == 200 and COOKIE in own.headers.get("set-cookie", "")
            assert (await second.post(TOKEN_ROUTE)).status_code == 200

        # This computer, straight to the app's port: not linkpronto's business.
        async with httpx.AsyncClient(timeout=10) as local:
            assert (await local.post(f"http://127.0.0.1:{app_port}{TOKEN_ROUTE}")).status_code == 200


async def test_without_the_setting_nothing_is_guarded(
    tmp_path: Path, livekit_inproc: InProcessDouble, app_port: int
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, app={"port": app_port})
    async with run_lp(settings) as lp:
        res = await lp.public.post(TOKEN_ROUTE)
        assert res.status_code == 200 and "set-cookie" not in res.headers


# -- slow: a real child app -----------------------------------------------------------------------------
TINYAPP = Path(__file__).parent.parent / "fixtures" / "tinyapp.py"


@pytest.mark.slow
async def test_the_guard_in_front_of_a_real_child_app(tmp_path: Path, livekit_double: Any) -> None:
    import sys

    app_port = free_port()
    settings = settings_for(
        tmp_path / "d", livekit_url=livekit_double.url,
        app={"command": f"{sys.executable} {TINYAPP} {app_port} {tmp_path / 'no-flag'}", "port": app_port,
             "link_path": LINK_PATH, "protected_routes": [TOKEN_ROUTE]},
    )
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        base = str(lp.public.base_url)
        async with httpx.AsyncClient(base_url=base, timeout=30) as patient:
            assert (await patient.get(TOKEN_ROUTE)).status_code == 401
            link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).json()
            page = await patient.get(LINK_PATH.replace("{token}", _token_of(link["url"])))
            assert page.status_code == 200 and "Sua consulta" in page.text
            res = await patient.get(TOKEN_ROUTE)
            assert res.status_code == 200 and res.json() == {"token": "signed-for-anyone"}
            assert (await lp.admin.delete(f"/api/consultation-links/{link['id']}")).status_code == 200
            assert (await patient.get(TOKEN_ROUTE)).status_code == 403
        # This computer, straight to the app: unaffected.
        async with httpx.AsyncClient(timeout=10) as local:
            assert (await local.get(f"http://127.0.0.1:{app_port}{TOKEN_ROUTE}")).status_code == 200
