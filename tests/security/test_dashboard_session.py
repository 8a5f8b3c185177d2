"""Issue 11, attack 4: another account on the same computer is not admin; the data directory is
owner-only; the dashboard works from the one-time URL `up` prints (real Chromium)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from doubles.livekit_server import RunningDouble
from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from linkpronto.web.session import DashboardSessions, cookie_name, should_open_browser
from security.child import orchestrator_child, require

CHROMIUM = "/usr/bin/chromium"
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PROBE = r"""
import json, sys, urllib.request, urllib.error
admin, data_dir, cookie = sys.argv[1], sys.argv[2], sys.argv[3]
out = {}
try:
    open(data_dir + "/admin-token").read()
    out["read_token"] = True
except OSError:
    out["read_token"] = False
def call(method, path, headers, body=None):
    req = urllib.request.Request(admin + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
origin = {"Origin": admin}
out["header_status"] = call("GET", "/api/status", {"X-Linkpronto": "1"})
out["header_links"] = call("GET", "/api/consultation-links", {"X-Linkpronto": "1"})
out["header_create"] = call("POST", "/api/consultation-links", {"X-Linkpronto": "1", "Content-Type": "application/json", **origin},
                            b'{"professional_id": "x"}')
out["cookie_status"] = call("GET", "/api/status", {"Cookie": cookie + "=1"})
out["cookie_links"] = call("GET", "/api/consultation-links", {"Cookie": cookie + "=copied", "X-Linkpronto": "1"})
out["reused_login"] = call("GET", "/?token=guess", {})
print(json.dumps(out))
"""


# Issue 19, HIGH 1: a page another account serves on another port of 127.0.0.1 receives the dashboard's
# cookie (browsers do not separate cookies by port) and replays it with an Origin it writes itself.
THIEF = r"""
import http.server, json, socketserver, sys, urllib.request, urllib.error
admin, port = sys.argv[1], int(sys.argv[2])
got = {}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        got["cookie"] = self.headers.get("Cookie", "")
        body = b"<!doctype html><title>cats</title><p>cats"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("127.0.0.1", port), H) as srv:
    print("listening", flush=True)
    srv.handle_request()
def call(method, path, body=None):
    headers = {"Cookie": got["cookie"], "Origin": admin, "Content-Type": "application/json"}
    req = urllib.request.Request(admin + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
out = {"had_cookie": "linkpronto_session_" in got["cookie"],
       "create": call("POST", "/api/consultation-links", b'{"professional_id": "thief"}'),
       "list": call("GET", "/api/consultation-links"),
       "mint_login": call("POST", "/api/dashboard-login"),
       "stream": call("GET", "/api/status/stream")}
print(json.dumps(out), flush=True)
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
async def test_another_os_user_is_not_admin_and_the_data_dir_is_owner_only(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    require(shutil.which("setpriv") is not None, "setpriv (util-linux)")
    tmp_path.chmod(0o755)  # the other account may traverse to the data dir, not into it
    data = tmp_path / "data"
    async with run_lp(settings_for(data, livekit_url=livekit_double.url)) as lp:
        await lp.wait_state("ready")
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra"})
        assert res.status_code == 201  # the database and its WAL exist now
        port = int(lp.running.admin_url.rsplit(":", 1)[1])
        probe = await asyncio.to_thread(  # the server runs on this event loop: never block it
            subprocess.run,
            [*AS_NOBODY, "/usr/bin/python3", "-I", "-c", PROBE, lp.running.admin_url, str(data), cookie_name(port)],
            capture_output=True, text=True, timeout=30, cwd="/",
        )
        assert probe.returncode == 0, probe.stderr
        seen = json.loads(probe.stdout)
        assert seen == {
            "read_token": False,
            "header_status": 401, "header_links": 401, "header_create": 401,
            "cookie_status": 401, "cookie_links": 401, "reused_login": 401,
        }
        assert _mode(data) == 0o700
        files = {p.name: _mode(p) for p in data.iterdir() if p.is_file()}
        for name in ("links.db", "links.db-wal", "links.db-shm", "admin-token", "secrets.json"):
            assert files.get(name) == 0o600, (name, files)
        assert all(m & 0o077 == 0 for m in files.values()), files


def test_sessions_are_one_time_and_the_browser_opens_only_on_a_desktop() -> None:
    s = DashboardSessions()
    login = s.new_login()
    redeemed = s.redeem(login)
    assert redeemed
    cookie, secret = redeemed
    assert s.valid(cookie, secret)
    assert not s.valid(cookie) and not s.valid(cookie, "guess")  # the cookie alone is nothing
    assert s.redeem(login) is None and not s.valid("guess", secret) and not s.valid("", "")
    desktop = {"DISPLAY": ":0"}
    assert should_open_browser(desktop, isatty=True, platform="linux")
    assert not should_open_browser({**desktop, "CI": "true"}, isatty=True, platform="linux")
    assert not should_open_browser(desktop, isatty=False, platform="linux")
    assert not should_open_browser({}, isatty=True, platform="linux")
    assert should_open_browser({}, isatty=True, platform="darwin")


@pytest.mark.slow
def test_up_prints_the_one_time_dashboard_url(tmp_path: Path, livekit_double: RunningDouble) -> None:
    with orchestrator_child(tmp_path / "data", livekit_double.url) as child:
        deadline = time.monotonic() + 15
        while not (m := re.search(r"(http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_\-]+)", child.log())):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert m, child.log()[-2000:]
        with httpx.Client() as c:
            res = c.get(m.group(1))
            assert res.status_code == 303
            secret = res.headers["location"].split("#lp-session=", 1)[1]
            assert c.get(child.admin_url + "/api/status").status_code == 401  # the cookie alone
            ok = c.get(child.admin_url + "/api/status", headers={"X-Linkpronto-Session": secret})
            assert ok.status_code == 200
        assert child.token not in child.log()


_API_STATUS = """async () => (await fetch('/api/status', {headers: {'X-Linkpronto-Session':
    localStorage.getItem('linkpronto-session') || ''}})).status"""
_API_STATUS_SECRET = """async (s) => (await fetch('/api/status', {headers: {'X-Linkpronto-Session': s}})).status"""


@pytest.mark.slow
async def test_dashboard_works_from_the_printed_url_in_chromium(tmp_path: Path, livekit_double: RunningDouble) -> None:
    require(Path(CHROMIUM).exists(), "chromium")
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_double.url)) as lp, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        try:
            ctx = await browser.new_context(locale="en")
            page = await ctx.new_page()
            await page.goto(lp.running.dashboard_url)
            assert page.url.rstrip("/") == lp.running.admin_url  # the token left the address bar
            await expect(page.locator("#stack-state")).to_have_attribute("data-state", "ready", timeout=20_000)
            secret_before = await page.evaluate("() => localStorage.getItem('linkpronto-session')")
            assert secret_before and "lp-session" not in page.url
            cookies = await ctx.cookies()
            session = next(c for c in cookies if c["name"].startswith("linkpronto_session_"))
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            # A state-changing request from the page itself (fetch sends a same-origin Origin).
            status = await page.evaluate(
                """async () => (await fetch('/api/consultation-links', {method: 'POST',
                     headers: {'content-type': 'application/json',
                               'X-Linkpronto-Session': localStorage.getItem('linkpronto-session')},
                     credentials: 'same-origin',
                     body: JSON.stringify({professional_id: 'dra', wait_s: 5})})).status"""
            )
            assert status == 201
            # A second browser with the same (used) URL gets nothing.
            other = await (await browser.new_context()).new_page()
            res = await other.goto(lp.running.dashboard_url)
            assert res is not None and res.status == 401
            assert await other.evaluate("async () => (await fetch('/api/status')).status") == 401
            # Another account's page on another port, opened in the signed-in browser (issue 19, HIGH 1).
            thief_port = free_port()
            thief = await asyncio.create_subprocess_exec(
                *AS_NOBODY, "/usr/bin/python3", "-I", "-c", THIEF, lp.running.admin_url, str(thief_port),
                stdout=asyncio.subprocess.PIPE, cwd="/",
            )
            assert thief.stdout is not None
            assert (await asyncio.wait_for(thief.stdout.readline(), 15)).strip() == b"listening"
            lure = await ctx.new_page()
            await lure.goto(f"http://127.0.0.1:{thief_port}/")
            seen = json.loads(await asyncio.wait_for(thief.stdout.readline(), 30))
            await thief.wait()
            assert seen == {"had_cookie": True, "create": 401, "list": 401, "mint_login": 401, "stream": 401}
            # The signed-in dashboard still works; its secret is in this origin's storage only.
            assert await page.evaluate(_API_STATUS) == 200
            assert await lure.evaluate("() => localStorage.getItem('linkpronto-session')") is None
            # Log out: the session is gone for the page too.
            await page.click("#logout")
            await expect(page.locator("#logged-out")).to_be_visible(timeout=10_000)
            assert await page.evaluate(_API_STATUS_SECRET, secret_before) == 401
        finally:
            await browser.close()
