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
    session = s.redeem(login)
    assert session and s.valid(session)
    assert s.redeem(login) is None and not s.valid("guess") and not s.valid("")
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
            assert c.get(child.admin_url + "/api/status").status_code == 200  # the cookie alone
        assert child.token not in child.log()


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
            cookies = await ctx.cookies()
            session = next(c for c in cookies if c["name"].startswith("linkpronto_session_"))
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            # A state-changing request from the page itself (fetch sends a same-origin Origin).
            status = await page.evaluate(
                """async () => (await fetch('/api/consultation-links', {method: 'POST',
                     headers: {'content-type': 'application/json'}, credentials: 'same-origin',
                     body: JSON.stringify({professional_id: 'dra', wait_s: 5})})).status"""
            )
            assert status == 201
            # A second browser with the same (used) URL gets nothing.
            other = await (await browser.new_context()).new_page()
            res = await other.goto(lp.running.dashboard_url)
            assert res is not None and res.status == 401
            assert await other.evaluate("async () => (await fetch('/api/status')).status") == 401
        finally:
            await browser.close()
