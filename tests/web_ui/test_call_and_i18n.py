"""Professional call page, English/pt-BR rendering, keyboard navigation and labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fake_api import FakeServers  # type: ignore[import-not-found]
from playwright.sync_api import BrowserContext, Page, expect

from conftest import PHONE  # type: ignore[import-not-found]

FAKE_LK = (Path(__file__).parent / "fake_livekit.js").read_text(encoding="utf-8")


def test_call_page_joins_with_host_token_and_end_offers_revoke(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = fake.stack.add_link(consultation_type="psicoterapia")
    ctx = new_context()
    ctx.add_init_script(FAKE_LK)
    page = ctx.new_page()
    page.goto(f"{fake.admin_url}/call/{link['id']}")
    expect(page.get_by_role("textbox", name="Link do paciente")).to_have_value(link["_url"])
    page.get_by_role("button", name="Iniciar chamada").click()
    expect(page.locator("#conn-state")).to_have_text("Conectado")
    assert fake.stack.host_tokens == [link["id"]]
    log = page.evaluate("window.__fakeLog")
    assert ["connect", fake.public_url.replace("http", "ws", 1) + "/_linkpronto/livekit", "fake-host-token"] in log
    assert ["enableCameraAndMicrophone"] in log
    expect(page.locator("#remote-caption")).to_have_text("Aguardando o paciente entrar…")
    page.evaluate("(() => { const r = window.__fakeRooms.at(-1); r.remoteParticipants.set('p', {}); "
                  "r.emit('participantConnected'); })()")
    expect(page.locator("#remote-caption")).to_have_text("Paciente")
    shot(page, "in-call")

    page.get_by_role("button", name="Encerrar consulta").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_contain_text("Cancelar o link desta consulta?")
    expect(page.get_by_role("button", name="Manter o link")).to_be_focused()
    dialog.get_by_role("button", name="Cancelar o link").click()
    expect(page.locator("#call-note")).to_have_text("Link cancelado.")
    assert fake.stack.links[link["id"]]["status"] == "revoked"
    expect(page.get_by_role("button", name="Iniciar chamada")).to_be_visible()


def test_call_page_real_livekit_client_reaches_rtc(
    fake: FakeServers, new_context: Callable[..., BrowserContext]
) -> None:
    """With the vendored livekit-client: the host token is used against /rtc (no LiveKit: it fails plainly)."""
    link = fake.stack.add_link()
    page = new_context().new_page()
    page.goto(f"{fake.admin_url}/call/{link['id']}")
    page.get_by_role("button", name="Iniciar chamada").click()
    expect(page.locator("#call-error")).to_contain_text("Não foi possível conectar à chamada.", timeout=45_000)
    assert fake.stack.rtc and all(p.startswith("/_linkpronto/livekit/rtc") for p in fake.stack.rtc)


def test_english_by_choice_and_toggle_in_place(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = fake.stack.add_link(consultation_type="psicoterapia")
    page = new_context(viewport=PHONE).new_page()
    page.goto(link["_url"] + "?lang=en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome to your consultation: psicoterapia")
    expect(page.get_by_role("button", name="Join the consultation")).to_be_visible()
    expect(page.locator("#media-state")).to_contain_text("Camera working")
    shot(page, "patient-en")
    page.get_by_role("link", name="Português").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bem-vindo(a) à sua consulta: psicoterapia")
    expect(page.locator("#media-state")).to_contain_text("Câmera funcionando")
    assert "lang=pt-BR" in page.url

    dash = new_context().new_page()
    dash.goto(fake.admin_url + "/?lang=en")
    expect(dash.get_by_role("heading", name="Create a consultation link")).to_be_visible()
    expect(dash.locator("#stack-state")).to_have_text("Ready")
    expect(dash.locator("#media-reach")).to_have_text("Same network only (Wi-Fi)")
    dash.get_by_label("Professional (ID)").fill("dr-x")
    dash.get_by_role("button", name="Create link").click()
    expect(dash.locator("#gen-result")).to_contain_text("Link ready and tested")
    shot(dash, "dashboard-en")
    posts = [r for r in fake.stack.requests if r[0] == "POST"]
    assert posts  # the API calls carry ?lang=en so the server localizes messages
    dash.get_by_role("link", name="Português").click()
    expect(dash.get_by_role("heading", name="Gerar link de consulta")).to_be_visible()
    expect(dash.locator("#stack-state")).to_have_text("Pronto")


def test_api_calls_carry_lang(fake: FakeServers, new_context: Callable[..., BrowserContext]) -> None:
    page = new_context().new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.goto(fake.admin_url + "/?lang=en")
    expect(page.locator("#stack-state")).to_have_text("Ready")
    api = [u for u in seen if "/api/" in u]
    assert api and all("lang=en" in u for u in api)


def _tab_order(page: Page, stops: int) -> list[str]:
    order = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    return order


def test_keyboard_navigation_and_labels(fake: FakeServers, new_context: Callable[..., BrowserContext]) -> None:
    page = new_context().new_page()
    page.goto(fake.admin_url + "/")
    expect(page.locator("#stack-state")).to_have_text("Pronto")
    order = _tab_order(page, 8)
    expected = ["lang-toggle", "professional_id", "client_id", "consultation_type", "gen-submit", "devtest-start"]
    assert [x for x in order if x in expected] == expected
    # keyboard only: type and submit with Enter
    page.locator("#professional_id").focus()
    page.keyboard.type("dra-ana")
    page.keyboard.press("Enter")
    expect(page.locator("#gen-result")).to_contain_text("Link pronto e testado")
    unlabeled = page.evaluate(
        "[...document.querySelectorAll('input, button, a')].filter(e => e.offsetParent !== null)"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby')"
        " && !e.textContent.trim()).map(e => e.outerHTML)"
    )
    assert unlabeled == []

    link = fake.stack.add_link()
    phone = new_context(viewport=PHONE).new_page()
    phone.goto(link["_url"])
    expect(phone.locator("#media-state")).to_contain_text("Câmera funcionando")
    order = _tab_order(phone, 4)
    assert order[:3] == ["lang-toggle", "display-name", "join"]
    assert phone.evaluate("document.getElementById('display-name').labels[0].textContent") == "Seu nome"
    phone.locator("#display-name").focus()
    phone.keyboard.type("João")
    phone.keyboard.press("Tab")
    phone.keyboard.press("Enter")
    expect(phone.locator("#checks-box")).to_be_visible()
