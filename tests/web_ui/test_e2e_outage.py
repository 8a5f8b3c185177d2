"""The dashboard against the real stack through a real ssh tunnel, while the tunnel comes and goes.

In-process ``serve`` (helpers.lp.run_lp), LiveKit = the LiveKit test double, tunnel = ``ssh -R`` to a
real OpenSSH server (tests/fixtures/sshd.py) on a fixed remote port. Chromium opens the admin URL
(no token: the dashboard's own same-origin requests). Only what a professional sees is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from conftest import ARTIFACTS, BASE_ARGS, CHROMIUM  # type: ignore[import-not-found]
from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer, sshd_available
from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from helpers.tiers import require
from linkpronto.config import Settings

SSH_DOWN = "Não consegui conectar por SSH a 127.0.0.1."
SSH_FIX = "Como resolver: Verifique o endereço em tunnel.ssh_target, se o servidor está no ar e a internet."
PREPARING = "Preparando o link… O link só aparece depois de testado pelo endereço público."


@pytest.fixture
def sshd() -> Iterator[SshServer]:
    """A real sshd, not started yet (each test decides when the tunnel's server is up)."""
    require(sshd_available(), "openssh-server (/usr/sbin/sshd)")
    server = SshServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def chromium(vendored: None) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def _settings(tmp_path: Path, double: RunningDouble, sshd: SshServer, remote: int) -> Settings:
    return settings_for(
        tmp_path / "data",
        livekit_url=double.url,
        tunnel={
            "provider": "ssh",
            "ssh_target": sshd.target,
            "ssh_remote_port": remote,
            "ssh_options": sshd.client_options(),
        },
    )


@contextlib.asynccontextmanager
async def _dashboard(browser: Browser, login_url: str) -> AsyncIterator[tuple[Page, list[str]]]:
    """The dashboard in a fresh context (closed before the stack stops: no stream left open)."""
    ctx = await browser.new_context(locale="pt-BR", permissions=["clipboard-read", "clipboard-write"])
    try:
        page = await ctx.new_page()
        navigations: list[str] = []
        # The login lands on "/#lp-session=…" and the page moves the secret into its storage
        # (history.replaceState: same document, no reload): only real page loads count here.
        page.on("framenavigated", lambda f: navigations.append(f.url)
                if f == page.main_frame and "#lp-session=" not in f.url else None)
        await page.goto(login_url)  # the one-time URL `up` prints: session cookie, then "/"
        await expect(page.locator("#stack-state")).not_to_have_text("Desconhecido")
        yield page, navigations
    finally:
        await ctx.close()


def _step(container: Locator, name: str) -> Locator:
    """The line of one step (a component or a check), found by its visible name."""
    return container.locator("li").filter(has=container.page.locator("strong").get_by_text(name, exact=True))


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"e2e-outage-{name}.png"), full_page=True)


async def _expect_ready_link(page: Page, public: str) -> str:
    result = page.locator("#gen-result")
    await expect(result).to_contain_text("✓ Link pronto e testado", timeout=20_000)
    url = await result.get_by_label("Link da consulta").input_value()
    assert re.fullmatch(re.escape(public) + r"/c/[A-Za-z0-9_-]{20,}", url), url
    await expect(result.get_by_role("button", name="Copiar")).to_be_visible()
    qr = result.get_by_role("img", name="QR code do link").locator("svg")
    await expect(qr).to_be_visible()
    box = await qr.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    return url


async def test_gerar_link_right_after_up_shows_steps_then_the_link(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer, chromium: Browser
) -> None:
    remote = free_port()
    public = f"http://127.0.0.1:{remote}"
    # The tunnel's server is not up yet when `up` starts: the stack is still starting at the click.
    async with (
        run_lp(_settings(tmp_path, livekit_double, sshd, remote)) as lp,
        _dashboard(chromium, lp.running.dashboard_url) as (page, navigations),
    ):
        await expect(page.locator("#stack-state")).to_have_text(re.compile("^(Iniciando|Verificando)$"))
        await page.get_by_label("Profissional (ID)").fill("dra-ana")
        await page.get_by_role("button", name="Gerar link").click()

        result = page.locator("#gen-result")
        await expect(result).to_contain_text(PREPARING)
        steps = result.locator("ul.steps")
        # LiveKit already answers; the tunnel's step says what is wrong and how to fix it.
        await expect(_step(steps, "livekit")).to_contain_text("✓")
        tunnel_step = _step(steps, "tunnel")
        await expect(tunnel_step).to_contain_text("✗")
        await expect(tunnel_step).to_contain_text(SSH_DOWN)
        await expect(tunnel_step).to_contain_text(SSH_FIX)
        await expect(result.get_by_label("Link da consulta")).to_have_count(0)  # never a link before proof
        await _shot(page, "starting-preparing")

        await asyncio.to_thread(sshd.start)
        # The steps tick off: the tunnel comes up, then the checks through the public URL pass...
        await expect(_step(page.locator("#checks"), "public_probe")).to_contain_text("✓", timeout=20_000)
        # ...and the link arrives by itself, with its copy button and QR code.
        url = await _expect_ready_link(page, public)
        await expect(page.locator("#stack-state")).to_have_text("Pronto")
        await _shot(page, "starting-ready")
        assert navigations == [lp.running.admin_url + "/"], navigations  # no reload
        assert (await lp.public.get(url.removeprefix(public))).status_code == 200


async def test_tunnel_outage_shows_the_fix_and_the_link_arrives_when_sshd_returns(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer, chromium: Browser
) -> None:
    remote = free_port()
    public = f"http://127.0.0.1:{remote}"
    sshd.start()
    async with (
        run_lp(_settings(tmp_path, livekit_double, sshd, remote)) as lp,
        _dashboard(chromium, lp.running.dashboard_url) as (page, navigations),
    ):
        await expect(page.locator("#stack-state")).to_have_text("Pronto", timeout=20_000)
        await page.get_by_label("Profissional (ID)").fill("dra-ana")
        await page.get_by_role("button", name="Gerar link").click()
        first = await _expect_ready_link(page, public)
        await page.locator("#gen-result").get_by_role("button", name="Copiar").click()
        await expect(page.locator("#gen-result")).to_contain_text("Copiado!")
        assert await page.evaluate("navigator.clipboard.readText()") == first
        await _shot(page, "ready")

        # The tunnel's server goes away: the status says so, which step fails, and how to fix it.
        await asyncio.to_thread(sshd.stop)
        await expect(page.locator("#stack-state")).to_have_text("Com problemas", timeout=15_000)
        problems = page.locator("#problems")
        await expect(page.get_by_role("heading", name="Problemas")).to_be_visible()
        await expect(problems).to_contain_text(SSH_DOWN)
        await expect(problems).to_contain_text(SSH_FIX)
        await expect(problems.locator("li", has_text=SSH_DOWN)).to_have_count(1)  # shown once
        tunnel_step = _step(page.locator("#components"), "tunnel")
        await expect(tunnel_step).to_contain_text("✗")
        await expect(tunnel_step).to_contain_text(SSH_FIX)
        await _shot(page, "degraded")

        # A new link now waits, showing the steps (the failing one with its fix) instead of a link.
        await page.get_by_role("button", name="Gerar link").click()
        result = page.locator("#gen-result")
        await expect(result).to_contain_text(PREPARING)
        await expect(_step(result.locator("ul.steps"), "tunnel")).to_contain_text(SSH_FIX)
        await expect(result.get_by_label("Link da consulta")).to_have_count(0)
        await _shot(page, "outage-preparing")

        # sshd returns: the stack recovers and the waiting link appears by itself, no reload.
        await asyncio.to_thread(sshd.start)
        second = await _expect_ready_link(page, public)
        assert second != first
        await expect(page.locator("#stack-state")).to_have_text("Pronto", timeout=15_000)
        await expect(page.get_by_role("heading", name="Problemas")).to_be_visible()  # http: not HTTPS
        await expect(problems).not_to_contain_text(SSH_DOWN)
        await _shot(page, "recovered")
        assert navigations == [lp.running.admin_url + "/"], navigations
        assert (await lp.public.get(second.removeprefix(public))).status_code == 200
