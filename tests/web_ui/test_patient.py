"""The patient page in Chromium at 390×844 with a fake camera and microphone. Browser-side states
(permission denied per browser and by Chromium itself, no device, busy device, insecure origin, leave and
rejoin) against the real server; against the fake API only what the real server cannot be put in: no
LiveKit behind /rtc at all, and the call's own states (reconnecting, removed) with each device check kept.
Joining, the device check and the 404/410 pages are also in test_real_server.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fake_api import FakeServers  # type: ignore[import-not-found]
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, expect
from real_server import RealServer  # type: ignore[import-not-found]

from conftest import ANDROID_UA, IPHONE_UA, PHONE  # type: ignore[import-not-found]

FAKE_LK = (Path(__file__).parent / "fake_livekit.js").read_text(encoding="utf-8")
THROW = """
navigator.mediaDevices.getUserMedia = async () => {{
  throw new DOMException("blocked by the test", "{name}");
}};
"""


def _phone(new_context: Callable[..., BrowserContext], **kw: Any) -> BrowserContext:
    return new_context(viewport=PHONE, is_mobile=True, has_touch=True, **kw)


def _wait(page: Page, cond: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll a condition on the fake's state while letting Playwright dispatch the page's events."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        page.wait_for_timeout(50)


def _video_playing(page: Page, selector: str) -> None:
    page.wait_for_function(
        f"() => {{ const v = document.querySelector({selector!r}); return v && v.videoWidth > 0 && !v.paused; }}"
    )


def test_preview_device_check_join_and_rtc_on_own_origin(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = fake.stack.add_link(consultation_type="psicoterapia")
    page = _phone(new_context).new_page()
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(link["_url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Bem-vindo(a) à sua consulta: psicoterapia")
    _video_playing(page, "#preview")
    expect(page.locator("#media-state")).to_contain_text("Câmera funcionando")
    shot(page, "preview")

    page.get_by_label("Seu nome").fill("Maria")
    page.get_by_role("button", name="Entrar na consulta").click()
    _wait(page, lambda: len(fake.stack.device_checks) >= 1)
    assert fake.stack.joins == [{"token": link["_token"], "display_name": "Maria"}]
    result = fake.stack.device_checks[0]
    assert set(result) >= {"ok", "checks", "user_agent", "camera", "microphone"}
    assert result["camera"] == "ok" and result["microphone"] == "ok"
    assert [c["name"] for c in result["checks"]] == ["websocket", "webrtc", "turn"]
    assert all(set(c) == {"name", "status", "message"} for c in result["checks"])
    assert result["ok"] is False  # no LiveKit behind the fake /rtc

    # livekit-client opened its signalling WebSocket on the page's own origin
    ws_origin = fake.public_url.replace("http://", "ws://")
    assert sockets and all(ws.url.startswith(ws_origin + "/_linkpronto/livekit/rtc") for ws in sockets)
    assert fake.stack.rtc and all(p.startswith("/_linkpronto/livekit/rtc") for p in fake.stack.rtc)
    # the call could not connect: the page says so plainly and offers the way back
    expect(page.locator("#join-error")).to_contain_text("Não foi possível conectar à chamada.", timeout=45_000)
    expect(page.locator("#lobby")).to_be_visible()
    shot(page, "connect-failed")
    # nothing from another origin, ever
    assert requests and all(u.startswith((fake.public_url, "data:")) for u in requests)


def test_connected_call_states_with_livekit_double(
    fake: FakeServers, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = fake.stack.add_link(consultation_type="nutrição")
    ctx = _phone(new_context)
    ctx.add_init_script(FAKE_LK)
    page = ctx.new_page()
    page.goto(link["_url"])
    _video_playing(page, "#preview")
    page.get_by_role("button", name="Entrar na consulta").click()
    expect(page.locator("#conn-state")).to_have_text("Conectado")
    _video_playing(page, "#local-video")
    _wait(page, lambda: len(fake.stack.device_checks) >= 2, timeout=10)  # preflight, then with call stats
    preflight, in_call = fake.stack.device_checks[:2]
    assert preflight["ok"] is True and preflight["phase"] == "preflight"
    assert {c["name"]: c["status"] for c in in_call["checks"]} == {
        "websocket": "success", "webrtc": "success", "turn": "skipped",
        "publish_video": "success", "publish_audio": "success",
    }
    log = page.evaluate("window.__fakeLog")
    assert ["connect", fake.public_url.replace("http", "ws", 1) + "/_linkpronto/livekit", "fake-join-token"] in log
    assert ["publish", "video", "camera"] in log and ["publish", "audio", "microphone"] in log

    page.evaluate("window.__fakeRooms.at(-1).emit('reconnecting')")
    expect(page.locator("#conn-state")).to_have_text("Conexão instável — reconectando…")
    shot(page, "reconnecting")
    page.evaluate("window.__fakeRooms.at(-1).emit('reconnected')")
    expect(page.locator("#conn-state")).to_have_text("Reconectado")
    page.get_by_role("button", name="Desligar microfone").click()
    expect(page.get_by_role("button", name="Ligar microfone")).to_have_attribute("aria-pressed", "true")

    page.evaluate("window.__fakeRooms.at(-1).emit('disconnected', 4)")  # removed: link revoked
    expect(page.get_by_role("heading", level=1)).to_have_text("Este link de consulta foi cancelado.")


def test_leave_and_rejoin(real: RealServer, new_context: Callable[..., BrowserContext]) -> None:
    link = real.ready_link()
    ctx = _phone(new_context)
    ctx.add_init_script(FAKE_LK)
    page = ctx.new_page()
    page.goto(link["_url"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Bem-vindo(a) à sua consulta")
    page.get_by_role("button", name="Entrar na consulta").click()
    expect(page.locator("#conn-state")).to_have_text("Conectado")
    page.get_by_role("button", name="Sair da consulta").click()
    expect(page.locator("#after-text")).to_have_text("Você saiu da consulta. Se precisar, abra o link de novo.")
    page.get_by_role("button", name="Entrar de novo").click()
    _video_playing(page, "#preview")
    expect(page.get_by_role("button", name="Entrar na consulta")).to_be_visible()


def test_denied_permission_help_per_browser(
    real: RealServer, new_context: Callable[..., BrowserContext], shot: Callable[[Page, str], Path]
) -> None:
    link = real.ready_link()
    cases = [
        (ANDROID_UA, "No Chrome do Android", "denied-chrome_android"),
        (IPHONE_UA, "toque em \"aA\"", "denied-safari_ios"),
        (None, "No computador", "denied-desktop"),
    ]
    for ua, text, kind in cases:
        ctx = _phone(new_context, user_agent=ua) if ua else new_context()
        ctx.add_init_script(THROW.format(name="NotAllowedError"))
        page = ctx.new_page()
        page.goto(link["_url"])
        help_box = page.locator("#media-help")
        expect(help_box).to_have_attribute("data-kind", kind)
        expect(help_box).to_contain_text("O navegador está bloqueando a câmera ou o microfone.")
        expect(help_box).to_contain_text(text)
        expect(page.get_by_role("button", name="Tentar de novo")).to_be_visible()
        shot(page, kind)


def test_denied_by_the_browser_itself(
    real: RealServer, bare_browser: Browser, shot: Callable[[Page, str], Path]
) -> None:
    """No fake-UI flag and no granted permission: Chromium itself refuses the camera."""
    link = real.ready_link()
    ctx = bare_browser.new_context(viewport=PHONE, permissions=[], locale="pt-BR")
    try:
        page = ctx.new_page()
        page.goto(link["_url"])
        expect(page.locator("#media-help")).to_contain_text("O navegador está bloqueando a câmera")
        page.get_by_role("button", name="Entrar na consulta").click()  # joining without devices is allowed
        checked = real.wait_link(link["id"], lambda d: d["device_check"] is not None, timeout=30,
                                 what="the device check")
        assert checked["device_check"]["camera"] == "denied"
        shot(page, "denied")
    finally:
        ctx.close()


def test_missing_device_and_busy_device(real: RealServer, new_context: Callable[..., BrowserContext]) -> None:
    link = real.ready_link()
    for error, text in (("NotFoundError", "Não encontramos câmera"), ("NotReadableError", "outro aplicativo")):
        ctx = _phone(new_context)
        ctx.add_init_script(THROW.format(name=error))
        page = ctx.new_page()
        page.goto(link["_url"])
        expect(page.locator("#media-help")).to_contain_text(text)


def test_insecure_origin_warns_that_camera_needs_https(
    real: RealServer, bare_browser: Browser, shot: Callable[[Page, str], Path]
) -> None:
    link = real.ready_link()
    port = real.public_url.rsplit(":", 1)[1]
    ctx = bare_browser.new_context(viewport=PHONE, locale="pt-BR")
    try:
        page = ctx.new_page()
        page.goto(f"http://clinic.test:{port}/_linkpronto/c/{link['_token']}")  # resolved to 127.0.0.1, not secure
        assert page.evaluate("window.isSecureContext") is False
        expect(page.locator("#env-warning")).to_contain_text("não começa com https")
        expect(page.locator("#media-help")).to_have_attribute("data-kind", "insecure")
        shot(page, "insecure")
    finally:
        ctx.close()
