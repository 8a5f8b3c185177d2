"""The admin dashboard in Chromium against the fake API, for states the real server cannot be put in on
demand: checks ticking off while preparing, a failure then a recovery, links sent before the address
changed and a failed device check. The flows themselves run against the real server (test_real_server.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fake_api import FakeServers  # type: ignore[import-not-found]
from playwright.sync_api import BrowserContext, Page, expect
from real_server import RealServer  # type: ignore[import-not-found]

FAKE_LK = (Path(__file__).parent / "fake_livekit.js").read_text(encoding="utf-8")


def _open(new_context: Callable[..., BrowserContext], fake: FakeServers, query: str = "") -> Page:
    ctx = new_context(permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    # As a user does: the one-time URL (cookie, 303 to "/"), then the query the test wants.
    page.goto(fake.login_url)
    if query:
        page.goto(fake.admin_url + "/" + query)
    expect(page.locator("#stack-state")).not_to_have_attribute("data-state", "unknown")
    return page


def test_generate_link_preparing_then_ready(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    fake.stack.set_starting()
    page = _open(new_context, fake)
    expect(page.locator("#stack-state")).to_have_text("Iniciando")
    page.get_by_label("Profissional (ID)").fill("dra-ana")
    page.get_by_label("Paciente (ID, opcional)").fill("paciente-7")
    page.get_by_label("Tipo de consulta (opcional)").fill("psicoterapia")
    page.get_by_role("button", name="Gerar link").click()

    result = page.locator("#gen-result")
    expect(result).to_have_class(re.compile("preparing"))
    # the steps tick off from the status stream while the link is preparing
    expect(result.locator("li[data-name='public_probe'][data-ok='true']")).to_be_visible()
    shot(page, "preparing")
    expect(result).to_have_class(re.compile("ready"), timeout=10_000)
    link = next(iter(fake.stack.links.values()))
    url_box = result.get_by_label("Link da consulta")
    expect(url_box).to_have_value(link["_url"])
    expect(result.locator(".qr svg")).to_be_visible()
    assert result.locator(".qr svg").evaluate("e => e instanceof SVGSVGElement && e.getBoundingClientRect().width > 100")
    expect(result.get_by_role("link", name="Enviar no WhatsApp")).to_have_attribute(
        "href", re.compile(r"^https://wa\.me/")
    )
    expect(result.locator(".expires")).to_contain_text("Válido até")
    result.get_by_role("button", name="Copiar").click()
    expect(result.get_by_text("Copiado!")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == link["_url"]
    shot(page, "ready")

    # every API call carried the session cookie (no header grants anything); the preparing link was
    # re-read, not hammered
    api_calls = [r for r in fake.stack.requests if r[1].startswith("/api/")]
    assert api_calls and all("linkpronto_session_fake=ok" in r[2].get("cookie", "") for r in api_calls)
    assert not any("x-linkpronto" in r[2] for r in api_calls)
    polls = [r for r in api_calls if r[1] == f"/api/consultation-links/{link['id']}"]
    assert 1 <= len(polls) <= 15
    assert link["professional_id"] == "dra-ana" and link["consultation_type"] == "psicoterapia"


def test_error_shows_fix_and_retry_recovers(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    fake.stack.fail_with = {
        "code": "TUNNEL_UNREACHABLE",
        "message": "O túnel não responde.",
        "fix": "Confira se o servidor SSH está no ar.",
    }
    page = _open(new_context, fake)
    page.get_by_label("Profissional (ID)").fill("dra-ana")
    page.get_by_role("button", name="Gerar link").click()
    result = page.locator("#gen-result")
    expect(result).to_have_class(re.compile("error"))
    expect(result).to_contain_text("O túnel não responde.")
    expect(result).to_contain_text("Como resolver: Confira se o servidor SSH está no ar.")
    expect(result).to_contain_text("TUNNEL_UNREACHABLE")
    shot(page, "error")

    fake.stack.fail_with = None
    result.get_by_role("button", name="Tentar de novo").click()
    expect(result).to_have_class(re.compile("ready"))
    expect(result.locator(".qr svg")).to_be_visible()


def test_missing_professional_is_explained(real: RealServer, new_context: Callable[..., BrowserContext]) -> None:
    page = new_context().new_page()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    real.open_admin(page)
    page.get_by_role("button", name="Gerar link").click()
    expect(page.locator("#gen-result")).to_contain_text("Informe o profissional.")
    expect(page.get_by_label("Profissional (ID)")).to_be_focused()
    assert posts == []  # explained in the page; nothing was sent
    assert real.links() == []


def test_links_table_flags_and_revoke_with_confirmation(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    old = fake.stack.add_link(professional_id="dr-bruno", client_id="c1", sent_with_old_address=True)
    fake.stack.add_link(professional_id="dra-ana", status="expired")
    tested = fake.stack.add_link(professional_id="dra-carla")
    tested["device_check"] = {"ok": False, "camera": "denied", "microphone": "ok",
                              "checks": [{"name": "webrtc", "status": "failed", "message": "ice"}]}
    page = _open(new_context, fake)
    row = page.locator(f"tr[data-id='{old['id']}']")
    expect(row).to_contain_text("dr-bruno")
    expect(row.locator("[data-flag='resend']")).to_have_text("⚠ endereço mudou — reenviar")
    expect(row.locator("td[data-device='none']")).to_have_text("não testado")
    expect(page.locator(f"tr[data-id='{tested['id']}'] td[data-device='fail']")).to_contain_text("Conexão de vídeo")
    expect(page.locator("tr", has_text="dra-ana")).to_contain_text("expirado")
    shot(page, "table")

    row.get_by_role("button", name="Cancelar link").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Cancelar este link?")
    page.keyboard.press("Escape")  # cancel with the keyboard: nothing is revoked
    expect(dialog).to_be_hidden()
    assert fake.stack.links[old["id"]]["status"] == "ready"

    row.get_by_role("button", name="Cancelar link").click()
    dialog.get_by_role("button", name="Sim, cancelar o link").click()
    expect(row.locator(".status-pill")).to_have_text("cancelado")
    assert fake.stack.links[old["id"]]["status"] == "revoked"
    assert ("DELETE", f"/api/consultation-links/{old['id']}") in [(r[0], r[1]) for r in fake.stack.requests]
