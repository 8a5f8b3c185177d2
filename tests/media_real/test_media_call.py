"""Real media both ways through linkpronto, on the clinic topology (fixtures/clinic.py), with the real
livekit-server v1.13.5 that linkpronto runs in local mode, the example app (examples/nextjs-pages under
``linkpronto up --app "npx next dev -p 3001"``), a real ``ssh -R`` to a real sshd on the VPS, and real
Chromium (fake camera and microphone) inside the phone's and the laptop's namespaces.

* The patient, a 390×844 phone on the clinic's Wi-Fi (``wifi_phone``), opens linkpronto's patient page
  through the public URL — ``http://<vps>:8080``, the ssh tunnel's far end — passes the device check and
  joins; signalling crosses the gateway and the tunnel, media goes to LiveKit's LAN address.
* The professional, Chromium on the laptop, opens the example app on ``localhost:3001``, gets a token
  from the app's own ``/api/livekit/token`` for the link's room and joins with the vendored
  livekit-client, publishing camera and microphone.
* Each side's ``getStats()`` shows inbound video ``framesDecoded > 0`` and audio packets within 10 s of
  being in the call, and each remote <video> shows a non-black frame: read twice, once by drawing the
  frame onto a canvas in the page and once from a screenshot of the element (PNG decoded here).
* While all that runs, ``tcpdump`` listens on every interface of the root namespace that is up except
  the loopback and the topologies' own root-side veths (here: ``eth0``), filtered to our traffic
  (198.18.0.0/15, mDNS 5353, STUN 3478 and 19302): it must capture zero packets. The filter exists
  because this machine's real interface also carries other engineers' package downloads, which are
  not ours; everything the test sends has an address in 198.18.0.0/15 or one of those ports.

Then, on the same call: SIGKILL of the real livekit-server (found with psutil under ``linkpronto up``
in the laptop's namespace) → linkpronto restarts it, the ladder is ready again, both browsers decode
frames again by livekit-client's own reconnect, and a link issued before the kill still joins. Last,
revoking the link (admin ``DELETE``) removes the real patient within 1 s and neither the link nor the
LiveKit token the patient held can join again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from fixtures.clinic import APP_PORT, PHONE, TCPDUMP, Clinic, LinkprontoInHost, RootCapture
from helpers.tiers import require
from media_real.browser import (
    PATIENT_REMOTE,
    PRO_REMOTE,
    RECORD_PCS,
    frames_flowing,
    luminance,
    patient_join,
    png_luminance,
    pro_join,
    wait_media,
)

pytestmark = pytest.mark.real_livekit

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "media_real"
LINK_PATH = "/consultations/client/{token}"
BUNDLE = "/_linkpronto/static/vendor/livekit-client.umd.js"
NON_BLACK = 20.0  # mean luminance (0-255); Chromium's fake camera is a bright test pattern, black is ~0


def example_copy(into: Path) -> Path:
    """The example app with its cached node_modules (hard links: next dev writes .next in its own copy,
    so another test running the example at the same time never shares a build folder)."""
    from test_example_nextjs import prepare_example

    cached = prepare_example()
    app = into / "example"
    shutil.copytree(cached, app, ignore=shutil.ignore_patterns("node_modules", ".next"))
    subprocess.run(["cp", "-al", str(cached / "node_modules"), str(app / "node_modules")], check=True)
    return app


@dataclass
class Call:
    clinic: Clinic
    lp: LinkprontoInHost
    capture: RootCapture
    control: RootCapture
    patient: Page
    pro: Page
    link: dict[str, Any]
    grant: dict[str, Any]
    patient_browser: Browser
    sockets: list[str]
    ready_s: float


@pytest.fixture(scope="module")
def stack(clinic: Clinic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinkprontoInHost]:
    from gateway.test_nextjs import NPM, NPX

    require(NPM is not None and NPX is not None, "node and npm")
    require(Path("/usr/bin/chromium").is_file(), "/usr/bin/chromium")
    work = tmp_path_factory.mktemp("media")
    app = example_copy(work)
    lp = clinic.linkpronto(work / "data", app_command=f"npx next dev -p {APP_PORT}", link_path=LINK_PATH,
                           cwd=app).start()
    try:
        lp.wait_state("ready", 300)
        yield lp
    finally:
        lp.stop()


@pytest.fixture(scope="module")
def call(clinic: Clinic, stack: LinkprontoInHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Call]:
    require(Path(TCPDUMP).is_file(), "tcpdump (scripts/dev.py setup --tests installs it)")
    work = tmp_path_factory.mktemp("browsers")
    capture = RootCapture(work / "pcap").start()
    # The control: the same capture on the test process's own veth into the LAN must see our traffic,
    # so a capture that sees nothing anywhere (wrong filter, dead tcpdump) cannot pass for "no leak".
    control = RootCapture(work / "control", interfaces=[clinic.root_interface]).start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        phone_browser = pw.chromium.launch(executable_path=str(clinic.chromium(clinic.wifi_phone, work)),
                                           args=clinic.chromium_args())
        laptop_browser = pw.chromium.launch(executable_path=str(clinic.chromium(clinic.laptop, work)),
                                            args=clinic.chromium_args())
        contexts: list[BrowserContext] = []
        try:
            t0 = time.monotonic()
            link = stack.create_link(consultation_type="psicoterapia")
            token = link["url"].rsplit("/", 1)[1]
            own_page = f"{stack.public_url}/_linkpronto/c/{token}"
            ctx = phone_browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
            contexts.append(ctx)
            ctx.add_init_script(RECORD_PCS)
            patient = ctx.new_page()
            sockets: list[str] = []
            patient.on("websocket", lambda ws: sockets.append(ws.url))
            grant = patient_join(patient, own_page)
            pctx = laptop_browser.new_context(locale="pt-BR")
            contexts.append(pctx)
            pctx.add_init_script(RECORD_PCS)
            pro = pctx.new_page()
            joined = pro_join(pro, f"http://localhost:{APP_PORT}", link["room"], stack.public_url + BUNDLE)
            assert joined["identity"].startswith("pro-") and joined["url"].startswith(
                stack.public_url.replace("http", "ws") + "/_linkpronto/livekit")
            yield Call(clinic, stack, capture, control, patient, pro, link, grant, phone_browser, sockets,
                       time.monotonic() - t0)
        finally:
            for c in contexts:
                c.close()
            phone_browser.close()
            laptop_browser.close()
            capture.stop()
            control.stop()


def test_real_media_both_ways_through_the_tunnel_and_nothing_leaves_the_machine(call: Call) -> None:
    assert call.lp.status()["public_url"] == call.clinic.public_origin
    # The LiveKit config linkpronto rendered hands clients our own STUN address, never Google's.
    rendered = json.loads((call.lp.data_dir / "livekit.yaml").read_text())
    assert rendered["rtc"]["stun_servers"] == [f"{call.clinic.laptop_ip}:3478"]
    assert rendered["rtc"]["use_external_ip"] is False and rendered["rtc"]["node_ip"] == call.clinic.laptop_ip
    # Both sides decode the other's video and receive audio within 10 s of the call being up.
    wait_media(call.patient, 10)
    wait_media(call.pro, 10)
    for page, selector, name in ((call.patient, PATIENT_REMOTE, "patient"), (call.pro, PRO_REMOTE, "pro")):
        page.wait_for_function(f"() => document.querySelector({selector!r})?.videoWidth > 0", timeout=10_000)
        assert luminance(page, selector) > NON_BLACK, name
        shot = page.locator(selector).screenshot(path=str(ARTIFACTS / f"remote-{name}.png"))
        assert png_luminance(shot) > NON_BLACK, name
        page.screenshot(path=str(ARTIFACTS / f"call-{name}.png"))
    # Signalling went through the gateway behind the tunnel (the patient's page only ever spoke to the VPS).
    ws_base = call.clinic.public_origin.replace("http", "ws") + "/_linkpronto/livekit/rtc"
    assert call.sockets and all(url.startswith(ws_base) for url in call.sockets), call.sockets
    # The phone's media went to LiveKit's LAN address: the selected candidate pair of the patient's
    # subscriber connection is a host candidate at the laptop.
    remote = call.patient.evaluate("""async () => {
      for (const pc of window.__pcs) {
        const r = await pc.getStats();
        for (const s of r.values()) if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded")
          return r.get(s.remoteCandidateId)?.address;
      }
      return null;
    }""")
    assert remote == call.clinic.laptop_ip
    # The admin API (the test's status requests) crossed the control veth; nothing crossed eth0 & co.
    call.lp.status()
    control = call.control.stop()
    assert control[call.clinic.root_interface] > 0, control
    counts = call.capture.stop()
    assert counts and all(n == 0 for n in counts.values()), {
        iface: call.capture.packets(iface)[:2000] for iface in counts}


def test_sigkill_of_livekit_mid_call_both_sides_recover_and_an_old_link_still_joins(call: Call) -> None:
    before = call.lp.create_link(professional_id="dra-ana", consultation_type="retorno")  # issued pre-kill
    wait_media(call.patient, 10)
    lk = call.lp.livekit_process()
    old_pid = lk.pid
    lk.kill()  # SIGKILL
    killed_at = time.monotonic()
    deadline = killed_at + 60
    new_pid = None
    while time.monotonic() < deadline:
        try:
            new_pid = call.lp.livekit_process().pid
            if new_pid != old_pid:
                break
        except LookupError:
            pass
        time.sleep(0.2)
    assert new_pid is not None and new_pid != old_pid, "linkpronto did not restart livekit-server"
    call.lp.wait_state("ready", 60)
    # Both browsers decode frames again, by livekit-client's own reconnect (no page reload, no click).
    frames_flowing(call.patient, 45)
    frames_flowing(call.pro, 45)
    recovered_s = time.monotonic() - killed_at
    assert call.patient.locator("#conn-state").get_attribute("data-state") in ("connected", "reconnected")
    assert luminance(call.patient, PATIENT_REMOTE) > NON_BLACK
    assert luminance(call.pro, PRO_REMOTE) > NON_BLACK
    # The link issued before the kill still joins, on a second phone.
    token = before["url"].rsplit("/", 1)[1]
    ctx = call.patient_browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
    try:
        page = ctx.new_page()
        grant = patient_join(page, f"{call.lp.public_url}/_linkpronto/c/{token}", name="João")
        assert grant["room"] == before["room"]
    finally:
        ctx.close()
    print(f"recovered in {recovered_s:.1f} s")


def test_revoke_removes_the_real_patient_within_a_second_and_the_token_cannot_rejoin(call: Call) -> None:
    wait_media(call.pro, 10)
    assert call.pro.evaluate("() => window.__room.remoteParticipants.size") == 1
    started = time.monotonic()
    res = call.lp.admin.delete(f"/api/consultation-links/{call.link['id']}")
    delete_s = time.monotonic() - started
    assert res.status_code == 200 and res.json()["status"] == "revoked", res.text
    # The DELETE answers once RoomService has removed the participant from the real server: that is
    # the "within 1 s". The professional's own client then hears of it over signalling (through the
    # tunnel, on a loaded machine): within a few seconds, reported.
    call.pro.wait_for_function("() => window.__room.remoteParticipants.size === 0", timeout=5_000)
    seen_s = time.monotonic() - started
    assert delete_s <= 1.0, (delete_s, seen_s)
    call.patient.wait_for_selector("main.gone", timeout=5_000)
    # The same link token cannot join again...
    token = call.link["url"].rsplit("/", 1)[1]
    public = call.clinic.public_origin
    again = httpx.post(f"{public}/_linkpronto/api/join", json={"token": token}, timeout=30)
    assert again.status_code == 410, again.text
    # ...nor the LiveKit token the patient held (still inside its lifetime): refused at the gateway.
    ws = public.replace("http", "ws") + "/_linkpronto/livekit/rtc"
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws}?access_token={call.grant['access_token']}&protocol=16", open_timeout=10).close()
    assert refused.value.response.status_code == 401
