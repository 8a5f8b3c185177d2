"""The page rung (issue 16, point 5): the app's link page opened as a phone would.

Fast: the rung's cadence and its check with a stand-in loader. Slow: a real child app whose link
page's data API answers 500, reached through linkpronto's public listener by a real headless
Chromium (Playwright) — the ladder reports the failing call and its fix; with the API fixed, ok.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.net import free_port
from helpers.tiers import require
from linkpronto.pagecheck import PageReport, PageRung, report_check

URL = "https://x.example/consultations/client/probe"


def test_a_500_data_call_breaks_the_page_and_a_404_is_only_reported() -> None:
    broken = report_check(PageReport(failed=[("GET", "/api/public/professional", 500)]), 12.0)
    assert (broken.name, broken.ok, broken.required) == ("page", False, True)
    assert "PAGE_BROKEN" in broken.detail.en and "/api/public/professional answered HTTP 500" in broken.detail.en
    assert "HTTP 500" in broken.detail.pt and broken.fix is not None and "F12" in broken.fix.pt
    assert not report_check(PageReport(failed=[("POST", "/api/x", None)]), 1.0).ok  # no answer at all
    assert not report_check(PageReport(page_errors=["TypeError: x is undefined"]), 1.0).ok
    seen = report_check(PageReport(failed=[("GET", "/favicon.ico", 404)], console_errors=["oops"]), 1.0)
    assert seen.ok and "/favicon.ico answered HTTP 404" in seen.detail.en and "console.error: oops" in seen.detail.en
    clean = report_check(PageReport(), 1.0)
    assert clean.ok and "no failing request" in clean.detail.en


async def test_no_browser_means_not_checked_and_never_a_failure() -> None:
    rung = PageRung("auto", 60.0, find=lambda _: None)
    check = rung.check(URL)
    assert check is not None and check.ok and not check.required
    assert check.detail.en.startswith("not checked: no Chromium") and check.fix is not None
    off = PageRung("off", 60.0, find=lambda _: Path("/usr/bin/chromium")).check(URL)
    assert off is not None and off.ok and "turned off" in off.detail.en
    assert rung.check(None) is None  # no app page: no rung


async def test_runs_in_the_background_on_its_own_cadence() -> None:
    now = [0.0]
    calls: list[str] = []
    gate = asyncio.Event()
    answer = [PageReport(failed=[("GET", "/api/public/professional", 500)])]

    async def loader(url: str, browser: Path) -> PageReport:
        calls.append(url)
        await gate.wait()
        return answer[0]

    rung = PageRung("auto", 100.0, loader=loader, find=lambda _: Path("/b"), clock=lambda: now[0])
    first = rung.check(URL)
    assert first is not None and first.ok and "under way" in first.detail.en  # returned at once
    await asyncio.sleep(0)
    assert calls == [URL]
    gate.set()
    await asyncio.sleep(0.01)
    failing = rung.check(URL)
    assert failing is not None and not failing.ok and calls == [URL]  # not due yet: no second run
    now[0] = 16.0  # a failing page is retried sooner than the interval
    answer[0] = PageReport()
    assert rung.check(URL) is failing  # the run started; the latest result stays until it ends
    await asyncio.sleep(0.01)
    fixed = rung.check(URL)
    assert fixed is not None and fixed.ok and len(calls) == 2
    now[0] = 16.0 + 50.0  # a passing page waits the whole interval
    rung.check(URL)
    await asyncio.sleep(0.01)
    assert len(calls) == 2
    # Another public URL: the old result is no answer for it.
    other = rung.check("https://y.example/consultations/client/probe")
    assert other is not None and "under way" in other.detail.en
    await rung.aclose()


async def test_a_browser_that_cannot_run_is_reported_as_not_checked() -> None:
    async def loader(url: str, browser: Path) -> PageReport:
        raise RuntimeError("chromium crashed")

    rung = PageRung("auto", 100.0, loader=loader, find=lambda _: Path("/b"))
    rung.check(URL)
    await asyncio.sleep(0.01)
    check = rung.check(URL)
    assert check is not None and check.ok and not check.required and "chromium crashed" in check.detail.en


# -- slow: a real app, a real browser -------------------------------------------------------------------
TINYAPP = Path(__file__).parent / "fixtures" / "tinyapp.py"


async def _page_check(lp: Any, *, ok: bool, timeout: float = 90.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        checks = (await lp.admin.get("/api/status")).json()["verification"]["checks"]
        last = next((c for c in checks if c["name"] == "page"), {})
        if last and last["ok"] is ok and not last["detail"].startswith("not checked: the page's first"):
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"page check ok={ok} not reached; last: {last}")


@pytest.mark.slow
async def test_the_page_rung_reports_a_failing_data_call_then_ok_when_fixed(
    tmp_path: Path, livekit_double: Any
) -> None:
    from helpers.lp import run_lp, settings_for
    from linkpronto.platform import find_chromium

    require(find_chromium("auto") is not None, "a Chromium (/usr/bin/chromium)")
    require(importlib.util.find_spec("playwright") is not None, "Playwright (the test extra)")
    app_port = free_port()
    flag = tmp_path / "broken"
    flag.write_text("1")
    settings = settings_for(
        tmp_path / "d", livekit_url=livekit_double.url,
        app={"command": f"{sys.executable} {TINYAPP} {app_port} {flag}", "port": app_port,
             "link_path": "/consultations/client/{token}"},
        verify={"page_interval": 2.0, "page_browser": "auto"},
    )
    async with run_lp(settings) as lp:
        broken = await _page_check(lp, ok=False)
        assert "PAGE_BROKEN" in broken["detail"] and "/api/public/professional" in broken["detail"]
        assert "HTTP 500" in broken["detail"] and broken["required"] and "F12" in broken["fix"]
        # The page is broken: the stack is not ready, and says why.
        assert (await lp.admin.get("/api/status")).json()["state"] != "ready"
        flag.unlink()  # the missing setting is added
        fixed = await _page_check(lp, ok=True)
        assert "no failing request" in fixed["detail"], fixed
        await lp.wait_state("ready", timeout=30)
