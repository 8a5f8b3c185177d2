"""The dashboard's API calls carry the language; keyboard navigation and labels — against the real server.
The call page and the English UI are in test_real_server.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect
from real_server import RealServer  # type: ignore[import-not-found]

from conftest import PHONE  # type: ignore[import-not-found]

FAKE_LK = (Path(__file__).parent / "fake_livekit.js").read_text(encoding="utf-8")


def test_api_calls_carry_lang(real: RealServer, new_context: Callable[..., BrowserContext]) -> None:
    page = new_context().new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    real.open_admin(page, "/?lang=en")
    expect(page.locator("#stack-state")).to_have_text("Ready")
    api = [u for u in seen if "/api/" in u]
    assert api and all("lang=en" in u for u in api)


def _tab_order(page: Page, stops: int) -> list[str]:
    order = []
    for _ in range(stops):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    return order


def test_keyboard_navigation_and_labels(real: RealServer, new_context: Callable[..., BrowserContext]) -> None:
    page = new_context().new_page()
    real.open_admin(page)
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

    link = real.ready_link()
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
