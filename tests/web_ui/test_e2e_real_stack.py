"""The pages against the real listeners (in-process `serve`, external LiveKit = the LiveKit test double,
tunnel = static URL of the public listener): dashboard → ready link → phone page → join, device check."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import WebSocket, async_playwright, expect

from conftest import ARTIFACTS, BASE_ARGS, CHROMIUM, FAKE_MEDIA_ARGS, PHONE  # type: ignore[import-not-found]
from doubles.livekit_server import RunningDouble
from helpers.lp import run_lp, settings_for

FAKE_LK = (Path(__file__).parent / "fake_livekit.js").read_text(encoding="utf-8")


async def test_dashboard_link_to_phone_against_real_stack(
    tmp_path: Path, livekit_double: RunningDouble, vendored: None
) -> None:
    settings = settings_for(tmp_path / "data", livekit_url=livekit_double.url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with run_lp(settings) as lp, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS + FAKE_MEDIA_ARGS)
        try:
            page = await (await browser.new_context(locale="pt-BR")).new_page()
            await page.goto(lp.running.dashboard_url)  # the one-time URL `up` prints
            await expect(page.locator("#stack-state")).to_have_text("Pronto", timeout=15_000)
            # The tunnel in use and its trade-off in one line (here: static, the URL is the user's own).
            await expect(page.locator("#tunnel-provider")).to_have_text("static")
            await expect(page.locator("#tunnel-tradeoff")).to_contain_text("URL fixa")
            await page.get_by_label("Profissional (ID)").fill("dra-ana")
            await page.get_by_label("Tipo de consulta (opcional)").fill("psicoterapia")
            await page.get_by_role("button", name="Gerar link").click()
            result = page.locator("#gen-result")
            await expect(result).to_have_class(re.compile("ready"), timeout=20_000)
            await expect(result.locator(".qr svg")).to_be_visible()
            # a real SVG element (segno's inline markup has no xmlns), drawn at a useful size
            box = await result.locator(".qr svg").bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100
            assert await result.locator(".qr svg").evaluate("e => e instanceof SVGSVGElement")
            url = await result.get_by_label("Link da consulta").input_value()
            public = f"http://127.0.0.1:{settings.server.public_port}"
            assert url.startswith(public + "/c/")
            await page.screenshot(path=str(ARTIFACTS / "e2e-dashboard-ready.png"), full_page=True)

            phone = await (await browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")).new_page()
            sockets: list[WebSocket] = []
            phone.on("websocket", lambda ws: sockets.append(ws))
            await phone.goto(url)
            await expect(phone.get_by_role("heading", level=1)).to_have_text(
                "Bem-vindo(a) à sua consulta: psicoterapia"
            )
            await phone.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
            await phone.get_by_label("Seu nome").fill("Maria")
            await phone.get_by_role("button", name="Entrar na consulta").click()
            # livekit-client's signalling check passes through the gateway against the LiveKit double
            await expect(phone.locator("li[data-check='websocket']")).to_have_attribute("data-ok", "true",
                                                                                      timeout=20_000)
            await phone.screenshot(path=str(ARTIFACTS / "e2e-phone-checks.png"), full_page=True)
            assert sockets and all(ws.url.startswith(public.replace("http", "ws") + "/_linkpronto/livekit/rtc") for ws in sockets)
            await phone.context.close()  # the double has no WebRTC: the media checks would only time out

            # a second phone with the livekit-client double completes the check; the real server keeps it
            ctx2 = await browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
            await ctx2.add_init_script(FAKE_LK)
            phone2 = await ctx2.new_page()
            await phone2.goto(url)
            await phone2.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
            await phone2.get_by_role("button", name="Entrar na consulta").click()
            await expect(phone2.locator("#conn-state")).to_have_text("Conectado")

            await page.get_by_role("button", name="Atualizar").click()
            cell = page.locator("td[data-device]").first
            for _ in range(50):
                if await cell.get_attribute("data-device") != "none":
                    break
                await asyncio.sleep(0.2)
                await page.get_by_role("button", name="Atualizar").click()
            assert await cell.get_attribute("data-device") == "ok"
            await expect(cell).to_have_text("✓ aprovado")
            await page.screenshot(path=str(ARTIFACTS / "e2e-dashboard-device.png"), full_page=True)
        finally:
            await browser.close()
