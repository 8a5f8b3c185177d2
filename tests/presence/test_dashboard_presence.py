"""The dashboard in Chromium against the real server: "Maria está esperando" when the LiveKit double
sends participant_joined, with a beep the professional can turn off (remembered across reloads)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from presence.lpkit import lp_with_double, patient_joins, professional_joins, ready_link, wait_presence

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "presence"


async def test_dashboard_shows_the_waiting_patient_with_a_sound_that_can_be_turned_off(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with lp_with_double(tmp_path, departure_s=0.3) as (lp, double), async_playwright() as p:
        link, token = await ready_link(lp)
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = await browser.new_context(locale="pt-BR")
            page = await ctx.new_page()
            await page.goto(lp.running.dashboard_url)  # the one-time URL `up` prints: a session cookie
            en = await ctx.new_page()  # a second tab of the same browser, in English
            await en.goto(lp.running.admin_url + "/?lang=en")
            for pg in (page, en):
                await expect(pg.locator("#stack-state")).to_have_text(["Pronto", "Ready"][pg is en], timeout=15_000)
            notice = page.locator("#presence-notice")
            await expect(notice).to_be_hidden()
            assert await page.locator("#presence-sound").is_checked()  # sound on by default

            started = time.monotonic()
            patient = await patient_joins(lp, double, token, "Maria")
            await expect(notice).to_contain_text("Maria está esperando", timeout=5_000)
            shown_after_s = time.monotonic() - started
            await expect(en.locator("#presence-notice")).to_contain_text("Maria is waiting")
            assert await page.evaluate("document.body.dataset.beeps") == "1"
            row = page.locator(f"tr[data-id='{link['id']}'] .presence-pill")
            await expect(row).to_have_attribute("data-presence", "waiting")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-waiting.png"), full_page=True)
            (ARTIFACTS / "dashboard-latency.json").write_text(
                json.dumps({"join_to_notice_s": round(shown_after_s, 3)}), encoding="utf-8")

            # The professional joins: the notice goes away, the link shows "in the call".
            host = await professional_joins(lp, double, link["id"])
            await expect(notice).to_be_hidden(timeout=5_000)
            await expect(row).to_have_attribute("data-presence", "in_call")
            await patient.leave()
            await host.leave()
            await wait_presence(lp, link["id"], "ended")
            await expect(row).to_have_attribute("data-presence", "ended")

            # Sound off, remembered after a reload; a new arrival shows without a beep.
            await page.locator("#presence-sound").uncheck()
            await page.reload()
            await expect(page.locator("#stack-state")).to_have_text("Pronto", timeout=15_000)
            assert not await page.locator("#presence-sound").is_checked()
            await patient_joins(lp, double, token, "Maria")
            await expect(page.locator("#presence-notice")).to_contain_text("Maria está esperando", timeout=5_000)
            assert await page.evaluate("document.body.dataset.beeps || '0'") == "0"
            await expect(en.locator("#presence-notice")).to_contain_text("Maria is waiting")
            # the choice belongs to the browser: the other tab stays quiet too
            assert await en.evaluate("document.body.dataset.beeps") == "1"
        finally:
            await browser.close()
