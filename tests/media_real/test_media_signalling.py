"""Signalling through the gateway with the real livekit-server and the vendored livekit-client (2.23):
``/rtc/v1`` (with its ``join_request``) and the fallback to ``/rtc`` both carry a real call; LiveKit's
``/twirp`` and ``/debug`` never pass anonymously. On the clinic topology (fixtures/clinic.py): two
patients on the clinic's Wi-Fi open one link through the public URL (the ssh tunnel's far end on the
VPS) and must decode each other's video.

The fallback is forced the way a LiveKit without v1 forces it: the ``/rtc/v1`` WebSocket is refused and
``/rtc/v1/validate`` answers 404 — livekit-client then reconnects on ``/rtc`` ("v1 RTC path not found",
reason ``v0-rtc``). v1.13.5 knows v1, so in the second phone's page (an init script) those two URLs are
pointed at ``/rtc/v1-refused``, a path outside the gateway's allow-list: the 404s are the real
gateway's own, and the ``/rtc`` connection it falls back to is the real gateway and the real server.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from fixtures.clinic import PHONE, Clinic, LinkprontoInHost
from helpers.tiers import require
from media_real.browser import PATIENT_REMOTE, RECORD_PCS, luminance, patient_join, wait_media

pytestmark = pytest.mark.real_livekit

V1_WS = re.compile(r"/_linkpronto/livekit/rtc/v1(\?|$)")
V1_VALIDATE = re.compile(r"/_linkpronto/livekit/rtc/v1/validate")


@pytest.fixture(scope="module")
def lp(clinic: Clinic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinkprontoInHost]:
    require(Path("/usr/bin/chromium").is_file(), "/usr/bin/chromium")
    work = tmp_path_factory.mktemp("signalling")
    stack = clinic.linkpronto(work / "data").start()
    try:
        stack.wait_state("ready", 180)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def phone_browser(clinic: Clinic, lp: LinkprontoInHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with sync_playwright() as pw:
        exe = clinic.chromium(clinic.wifi_phone, tmp_path_factory.mktemp("chromium"))
        browser = pw.chromium.launch(executable_path=str(exe), args=clinic.chromium_args())
        yield browser
        browser.close()


#: In this page, livekit-client's /rtc/v1 socket and its /rtc/v1/validate go to a path the gateway
#: does not allow (``/rtc/v1-refused``): the real gateway refuses both with 404 "Not Found", which is
#: what a LiveKit without v1 answers. Every other request (the /rtc fallback) is untouched.
REFUSE_V1 = """
(() => {
  const V1 = /\\/_linkpronto\\/livekit\\/rtc\\/v1(\\/validate)?(\\?|$)/;
  const refused = (u) => String(u).replace("/_linkpronto/livekit/rtc/v1", "/_linkpronto/livekit/rtc/v1-refused");
  window.__refused = [];
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(url, protocols) {
      if (V1.test(String(url))) { window.__refused.push(String(url)); url = refused(url); }
      super(url, protocols);
    }
  };
  const fetch0 = window.fetch.bind(window);
  window.fetch = (input, init) => {
    const u = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (V1.test(u)) { window.__refused.push(u); return fetch0(refused(u), init); }
    return fetch0(input, init);
  };
})();
"""


def test_rtc_v1_and_the_fallback_to_rtc_both_carry_a_real_call(clinic: Clinic, lp: LinkprontoInHost,
                                                               phone_browser: Browser) -> None:
    link = lp.create_link(consultation_type="psicoterapia")
    token = link["url"].rsplit("/", 1)[1]
    page_url = f"{lp.public_url}/_linkpronto/c/{token}"
    ws_base = lp.public_url.replace("http", "ws") + "/_linkpronto/livekit"
    contexts = []
    try:
        # Phone 1: livekit-client's own first choice, /rtc/v1 with a join_request.
        ctx1 = phone_browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
        contexts.append(ctx1)
        ctx1.add_init_script(RECORD_PCS)
        one = ctx1.new_page()
        seen1: list[str] = []
        one.on("websocket", lambda ws: seen1.append(ws.url))
        patient_join(one, page_url, name="Maria")
        v1 = [u for u in seen1 if urlsplit(u).path == "/_linkpronto/livekit/rtc/v1"]
        assert v1 and all(u.startswith(ws_base) for u in seen1), seen1
        query = parse_qs(urlsplit(v1[-1]).query)
        assert "join_request" in query and "access_token" in query, query.keys()
        base64.urlsafe_b64decode(query["join_request"][0] + "==")  # a serialized JoinRequest (protobuf)

        # Phone 2: /rtc/v1 refused as an old LiveKit refuses it -> livekit-client falls back to /rtc.
        ctx2 = phone_browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
        contexts.append(ctx2)
        ctx2.add_init_script(RECORD_PCS)
        ctx2.add_init_script(REFUSE_V1)
        two = ctx2.new_page()
        seen2: list[str] = []
        two.on("websocket", lambda ws: seen2.append(ws.url))
        patient_join(two, page_url, name="João")
        v0 = [u for u in seen2 if urlsplit(u).path == "/_linkpronto/livekit/rtc"]
        refused = two.evaluate("() => window.__refused")
        assert any("/rtc/v1/validate" in u for u in refused) and v0, (refused, seen2)
        assert any(urlsplit(u).path == "/_linkpronto/livekit/rtc/v1-refused" for u in seen2), seen2
        assert "join_request" not in parse_qs(urlsplit(v0[-1]).query)

        # Both calls are real: each phone decodes the other's video and hears its audio.
        for page in (one, two):
            wait_media(page, 10)
            page.wait_for_function(f"() => document.querySelector({PATIENT_REMOTE!r})?.videoWidth > 0",
                                   timeout=10_000)
            assert luminance(page, PATIENT_REMOTE) > 20
    finally:
        for c in contexts:
            c.close()


LIVEKIT_PRIVATE = [
    "/twirp/livekit.RoomService/ListRooms",
    "/twirp/livekit.RoomService/RemoveParticipant",
    "/debug/pprof/",
    "/debug/rooms",
]


def test_twirp_and_debug_never_pass_anonymously(clinic: Clinic, lp: LinkprontoInHost) -> None:
    public = lp.public_url
    # The real server does serve /twirp (it asks for credentials): the gateway's 404 is its own refusal.
    direct = clinic.laptop.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                                "-H", "Content-Type: application/json", "-d", "{}",
                                "http://127.0.0.1:7880/twirp/livekit.RoomService/ListRooms"], timeout=30)
    assert direct.stdout.strip() == "401", direct
    with httpx.Client(timeout=30) as client:
        for prefix in ("/_linkpronto/livekit", ""):
            for path in LIVEKIT_PRIVATE:
                for method in ("GET", "POST"):
                    res = client.request(method, public + prefix + path, json={})
                    assert res.status_code == 404, (method, prefix + path, res.status_code, res.text[:200])
                    assert "room" not in res.text.lower(), res.text[:200]
        # Encoded and dotted spellings are normalised before the allow-list, not after.
        for sneaky in ("/_linkpronto/livekit/rtc/../twirp/livekit.RoomService/ListRooms",
                       "/_linkpronto/livekit/%74wirp/livekit.RoomService/ListRooms",
                       "/_linkpronto/livekit//twirp/livekit.RoomService/ListRooms"):
            res = client.post(public + sneaky, json={})
            assert res.status_code in (400, 404), (sneaky, res.status_code)
