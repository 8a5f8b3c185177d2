"""Fixes from trying linkpronto as a clinic's developer would (fast tier: no process, no socket).

- a reused one-time dashboard address: the browser that is already signed in goes to the dashboard;
  another gets a page that names the command giving a new address (``linkpronto dashboard``);
- children's output is shown without raw terminal codes, and without the verification ladder's own
  probe requests (which ``next dev`` logs every few seconds);
- ``doctor`` does not take the word ``allowedDevOrigins`` in a comment for the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from linkpronto.doctor import _without_js_comments
from linkpronto.supervise.logtail import OutputHub
from linkpronto.web.admin import AdminGuard
from linkpronto.web.session import DashboardSessions, cookie_name

PORT = 7800


async def _dashboard(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("dashboard")(scope, receive, send)


def _client(sessions: DashboardSessions) -> httpx.AsyncClient:
    guard = AdminGuard(_dashboard, token="t" * 43, port_getter=lambda: PORT, token_path="admin-token",
                       sessions=sessions)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url=f"http://127.0.0.1:{PORT}")


async def test_a_reused_login_address_sends_a_signed_in_browser_to_the_dashboard() -> None:
    sessions = DashboardSessions()
    login = sessions.login_url(f"http://127.0.0.1:{PORT}").rsplit("token=", 1)[1]
    async with _client(sessions) as browser:
        first = await browser.get("/", params={"token": login})
        assert first.status_code == 303 and first.headers["location"].startswith("/#lp-session=")
        session = first.cookies[cookie_name(PORT)]
        browser.cookies.set(cookie_name(PORT), session)
        again = await browser.get("/", params={"token": login})
        assert again.status_code == 303 and again.headers["location"] == "/"
    async with _client(sessions) as stranger:
        refused = await stranger.get("/", params={"token": login, "lang": "en"})
        assert refused.status_code == 401
        assert "linkpronto dashboard" in refused.text
        assert cookie_name(PORT) not in refused.cookies


def test_child_output_has_no_terminal_codes_and_no_probe_requests() -> None:
    hub = OutputHub()
    feed = hub.sink("app")
    feed("\x1b[32m✓\x1b[39m Ready in 1.2s")
    feed(" GET /consultations/client/linkpronto-probe 200 in 12ms")
    feed("\x1b[?25h")
    feed("compiled /api/generate-consultation-token")
    lines = [item.line for item in hub.tail("app", 10)]
    assert lines == ["✓ Ready in 1.2s", "compiled /api/generate-consultation-token"]


def test_allowed_dev_origins_in_a_comment_is_not_the_setting(tmp_path: Path) -> None:
    commented = "// No allowedDevOrigins needed: linkpronto rewrites Host/Origin\nmodule.exports = {};\n"
    block = "/* allowedDevOrigins: [] */ module.exports = { reactStrictMode: true };\n"
    real = 'module.exports = { allowedDevOrigins: ["https://x.example"] }; // https://nextjs.org\n'
    assert "allowedDevOrigins" not in _without_js_comments(commented)
    assert "allowedDevOrigins" not in _without_js_comments(block)
    assert "allowedDevOrigins" in _without_js_comments(real)


def test_link_list_keeps_ids_and_urls_whole_and_times_short(monkeypatch: Any) -> None:
    import io

    from rich.console import Console

    from linkpronto import console

    buf = io.StringIO()
    monkeypatch.setattr(console, "out", Console(file=buf, width=80, force_terminal=False, color_system=None))
    from linkpronto import schema

    url = "https://consultas.example.com.br/consultations/client/" + "A" * 32
    # As `link list` has it: the API's answer parsed with the schema (the wire's own types).
    links = schema.LinkList.model_validate({"items": [{
        "id": "lk_0123456789abcdef", "status": "ready", "professional_id": "dra-ana", "room": "consulta-1",
        "created_at": "2026-12-03T03:16:37.505614Z", "expires_at": "2026-12-03T04:16:37.505614Z",
        "uses": 0, "max_uses": 1, "url": url,
    }]}).items
    console.print_links(links)
    text = buf.getvalue()
    assert url in text and "lk_0123456789abcdef" in text  # one piece each, copyable
    assert "2026-12-03 04:16" in text and ".505614" not in text
    # On a terminal: a table, with the same cells.
    buf = io.StringIO()
    monkeypatch.setattr(console, "out", Console(file=buf, width=200, force_terminal=True, color_system=None))
    console.print_links(links)
    assert url in buf.getvalue() and "┃" in buf.getvalue() and "2026-12-03 04:16" in buf.getvalue()
