"""Every page flow in Chromium (fake camera and microphone) against the REAL server: both listeners
in-process, the LiveKit test double as LiveKit, a static tunnel to the public listener.

Dashboard (generate, links table, revoke with confirmation), the professional's call page (real host
token, end → revoke), the patient page (preview, real join, device check reaching the dashboard), the
device-test flow, the English UI, and the 404/410 pages (expired, revoked, used up, unknown, revoked
while the page was open). What the pages did is checked in the real API and in the LiveKit double.
Where a page needs WebRTC, the browser gets the livekit-client test double (``fake_livekit.js``;
there is no media in the LiveKit double); the signalling through the real gateway is checked with the
real livekit-client.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
from livekit.api import TokenVerifier
from playwright.sync_api import BrowserContext, Page, expect
from real_server import RealServer, token_of  # type: ignore[import-not-found]

from conftest import PHONE  # type: ignore[import-not-found]
from helpers.inproc import InProcessDouble
from helpers.lp import TEST_KEY, TEST_SECRET

FAKE_LK = (Path(__file__).parent / "fake_livekit.js").read_text(encoding="utf-8")


# The real server honours Accept-Language: a browser set to Portuguese, as the patients' are.
def _ctx(new_context: Callable[..., BrowserContext], **kw: Any) -> BrowserContext:
    return new_context(locale=kw.pop("locale", "pt-BR"), **kw)


def _phone(new_context: Callable[..., BrowserContext], **kw: Any) -> BrowserContext:
    return _ctx(new_context, viewport=PHONE, is_mobile=True, has_touch=True, **kw)


def _dashboard(new_context: Callable[..., BrowserContext], real: RealServer, query: str = "") -> Page:
    page = _ctx(new_context).new_page()
    real.open_admin(page, "/" + query)
    expect(page.locator("#stack-state")).not_to_have_attribute("data-state", "unknown")
    return page


def _claims(token: str) -> Any:
    return TokenVerifier(TEST_KEY, TEST_SECRET, leeway=timedelta(seconds=5)).verify(token)


def _all_connects(page: Page) -> list[list[Any]]:
    return [e for e in page.evaluate("window.__fakeLog") if e[0] == "connect"]


def _is_probe(call: list[Any]) -> bool:
    claims = _claims(call[2])
    return claims.video is not None and str(claims.video.room).startswith("linkpronto-")


def _connect_calls(page: Page) -> list[list[Any]]:
    """Connections to the consultation's room (the patient's media check uses a probe room first)."""
    return [e for e in _all_connects(page) if not _is_probe(e)]


def test_dashboard_generates_lists_and_revokes_with_confirmation(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    earlier = real.create_link(professional_id="dr-bruno", client_id="c1")
    page = _dashboard(new_context, real)
    expect(page.locator("#stack-state")).to_have_text("Pronto")
    page.get_by_label("Profissional (ID)").fill("dra-ana")
    page.get_by_role("button", name="Gerar link").click()
    result = page.locator("#gen-result")
    expect(result).to_have_class(re.compile("ready"), timeout=20_000)
    made = [link for link in real.links() if link["professional_id"] == "dra-ana"]
    assert len(made) == 1 and made[0]["status"] == "ready"
    assert result.get_by_label("Link da consulta").input_value() == made[0]["url"]

    row = page.locator(f"tr[data-id='{earlier['id']}']")
    expect(row).to_contain_text("dr-bruno")
    row.get_by_role("button", name="Cancelar link").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Cancelar este link?")
    page.keyboard.press("Escape")  # cancelled with the keyboard: nothing is revoked
    expect(dialog).to_be_hidden()
    assert real.link(earlier["id"])["status"] == "ready"
    row.get_by_role("button", name="Cancelar link").click()
    dialog.get_by_role("button", name="Sim, cancelar o link").click()
    expect(row.locator(".status-pill")).to_have_text("cancelado")
    assert real.link(earlier["id"])["status"] == "revoked"
    shot(page, "revoked")

    patient = _phone(new_context).new_page()
    response = patient.goto(earlier["url"])
    assert response is not None and response.status == 410
    expect(patient.get_by_role("heading", level=1)).to_contain_text("cancelado")


def test_call_page_uses_a_real_host_token_and_ending_revokes(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = real.create_link(consultation_type="psicoterapia")
    ctx = _ctx(new_context)
    ctx.add_init_script(FAKE_LK)
    page = ctx.new_page()
    real.open_admin(page, f"/call/{link['id']}")
    expect(page.get_by_role("textbox", name="Link do paciente")).to_have_value(link["url"])
    page.get_by_role("button", name="Iniciar chamada").click()
    expect(page.locator("#conn-state")).to_have_text("Conectado")
    [(_, url, token)] = _connect_calls(page)
    assert url == real.livekit_url
    claims = _claims(token)  # signed with the pair LiveKit runs with, for this link's room
    assert claims.video is not None and claims.video.room == link["room"] and claims.video.room_join
    shot(page, "in-call")

    page.get_by_role("button", name="Encerrar consulta").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Cancelar o link desta consulta?")
    dialog.get_by_role("button", name="Cancelar o link").click()
    expect(page.locator("#call-note")).to_have_text("Link cancelado.")
    assert real.link(link["id"])["status"] == "revoked"


def test_call_page_livekit_client_signals_through_the_gateway_to_livekit(
    real: RealServer, livekit_inproc: InProcessDouble, new_context: Callable[..., BrowserContext]
) -> None:
    """The vendored livekit-client with the real host token: its signalling WebSocket goes through
    the public listener's ``/_linkpronto/livekit/rtc`` to LiveKit, which accepts it into the room."""
    link = real.create_link()
    page = _ctx(new_context).new_page()
    real.open_admin(page, f"/call/{link['id']}")
    page.get_by_role("button", name="Iniciar chamada").click()

    def for_this_room() -> list[dict[str, Any]]:
        """Signalling requests whose token is for this link's room (the double is shared by the session:
        other tests' tokens, expired by now, are in its log too)."""
        def room(token: str) -> str:
            claims = jwt.decode(token, options={"verify_signature": False})
            return str(claims.get("video", {}).get("room", ""))

        return [r for r in livekit_inproc.state()["ws_requests"]
                if "access_token" in r["query"] and room(r["query"]["access_token"]) == link["room"]]

    deadline = time.monotonic() + 30
    while not for_this_room():
        assert time.monotonic() < deadline, livekit_inproc.state()["ws_requests"]
        page.wait_for_timeout(100)
    assert all(r["path"] in ("/rtc", "/rtc/v1") for r in for_this_room())
    claims = _claims(for_this_room()[0]["query"]["access_token"])  # the real host token, signed for LiveKit
    assert claims.video is not None and claims.video.room_join


def test_patient_page_preview_join_and_device_check_reach_the_api(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = real.create_link(consultation_type="nutrição")
    ctx = _phone(new_context)
    ctx.add_init_script(FAKE_LK)
    page = ctx.new_page()
    page.goto(link["url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Bem-vindo(a) à sua consulta: nutrição")
    page.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    page.get_by_label("Seu nome").fill("Maria")
    page.get_by_role("button", name="Entrar na consulta").click()
    expect(page.locator("#conn-state")).to_have_text("Conectado")
    [(_, url, token)] = _connect_calls(page)
    assert url == real.livekit_url
    claims = _claims(token)
    assert claims.video is not None and claims.video.room == link["room"]
    assert claims.video.can_publish and not claims.video.room_admin
    assert claims.name == "Maria"
    joined = real.wait_link(link["id"], lambda d: d["uses"] == 1 and d["device_check"] is not None,
                            what="one use and a device check")
    assert joined["device_check"]["ok"] is True
    shot(page, "in-call")

    dash = _dashboard(new_context, real)
    cell = dash.locator(f"tr[data-id='{link['id']}'] td[data-device]")
    expect(cell).to_have_attribute("data-device", "ok")


def test_device_test_flow_from_dashboard_to_phone_and_back(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    page = _dashboard(new_context, real)
    page.get_by_role("button", name="Gerar QR de teste").click()
    box = page.locator("#devtest-result")
    expect(box.locator(".qr svg")).to_be_visible(timeout=20_000)
    expect(box).to_contain_text("Aguardando o celular")
    [link] = [link for link in real.links() if link["consultation_type"] == "teste-de-dispositivo"]
    assert link["professional_id"] == "device-test" and link["status"] == "ready"
    assert box.get_by_label("Link da consulta").input_value() == link["url"]

    phone_ctx = _phone(new_context)
    phone_ctx.add_init_script(FAKE_LK)
    phone = phone_ctx.new_page()
    phone.goto(link["url"])
    expect(phone.locator("#welcome")).to_have_text("Teste do seu aparelho")
    phone.get_by_role("button", name="Testar meu aparelho").click()
    expect(phone.locator("#checks-note")).to_have_text("Tudo certo! Este aparelho está pronto para a consulta.")
    outcome = box.locator("#devtest-outcome")
    expect(outcome).to_have_attribute("data-ok", "true", timeout=20_000)
    expect(outcome).to_contain_text("Celular aprovado")
    checked = real.link(link["id"])["device_check"]
    assert checked["ok"] is True and checked["phase"] == "device-test"
    assert not _connect_calls(phone)  # a test, not a call
    assert all(_is_probe(c) for c in _all_connects(phone))  # only the media check's probe room
    shot(page, "dashboard")

    box.get_by_role("button", name="Encerrar teste").click()
    expect(box).to_be_hidden()
    assert real.link(link["id"])["status"] == "revoked"


def test_english_ui_dashboard_and_patient_page(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    dash = _dashboard(new_context, real, "?lang=en")
    expect(dash.locator("html")).to_have_attribute("lang", "en")
    expect(dash.get_by_role("heading", name="Create a consultation link")).to_be_visible()
    expect(dash.locator("#stack-state")).to_have_text("Ready")
    dash.get_by_label("Professional (ID)").fill("dr-x")
    dash.get_by_label("Consultation type (optional)").fill("psicoterapia")
    dash.get_by_role("button", name="Create link").click()
    expect(dash.locator("#gen-result")).to_contain_text("Link ready and tested", timeout=20_000)
    shot(dash, "dashboard-en")
    url = dash.locator("#gen-result").get_by_label("Consultation link").input_value()

    page = _phone(new_context).new_page()
    page.goto(url + "?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome to your consultation: psicoterapia")
    expect(page.get_by_role("button", name="Join the consultation")).to_be_visible()
    shot(page, "patient-en")
    page.get_by_role("link", name="Português").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bem-vindo(a) à sua consulta: psicoterapia")

    # What the server says is in English too when the page asks in English.
    body = dash.evaluate("""async () => (await fetch('/api/consultation-links?lang=en', {method: 'POST',
        headers: {'Content-Type': 'application/json',
                  'X-Linkpronto-Session': localStorage.getItem('linkpronto-session')}, body: '{}'})).json()""")
    assert "professional_id" in body["error"]["message"]
    assert not re.search(r"[ãçõé]|obrigat", body["error"]["message"]), body


def test_gone_pages_expired_revoked_used_up_and_unknown(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    revoked = real.create_link()
    real.revoke(revoked["id"])
    used_up = real.create_link(max_uses=1)
    assert real.join(token_of(used_up)).status_code == 200
    # A link lives at least 60 s: the server's link clock is moved past it instead of waiting.
    expired = real.create_link(expires_in_s=60)
    links = real._lp.stack.links  # type: ignore[union-attr]
    real_clock = links.clock
    links.clock = lambda: real_clock() + timedelta(seconds=61)
    real.wait_link(expired["id"], lambda d: d["status"] == "expired", timeout=10, what="expiry")
    page = _phone(new_context).new_page()
    for link, text in ((expired, "expirou"), (revoked, "cancelado"), (used_up, "número máximo")):
        response = page.goto(link["url"])
        assert response is not None and response.status == 410, link
        expect(page.get_by_role("heading", level=1)).to_contain_text(text)
        expect(page.locator("main")).to_contain_text("peça um novo link ao profissional")
        assert page.locator("script[src]").count() == 0
        shot(page, text)
    assert real.link(used_up["id"])["status"] == "exhausted"
    assert real.link(expired["id"])["status"] == "expired"
    links.clock = real_clock
    response = page.goto(real.public_url + "/_linkpronto/c/nao-existe")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Não encontramos este link de consulta.")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not find this consultation link.")


def test_join_on_a_link_revoked_while_the_page_was_open(
    real: RealServer, new_context: Callable[..., BrowserContext]
) -> None:
    link = real.create_link()
    page = _phone(new_context).new_page()
    page.goto(link["url"])
    page.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
    real.revoke(link["id"])
    page.get_by_role("button", name="Entrar na consulta").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Este link de consulta foi cancelado.")
    assert real.link(link["id"])["uses"] == 0


def _utc_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
