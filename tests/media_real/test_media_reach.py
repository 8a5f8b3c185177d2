"""Phones on other networks, for real (fixtures/clinic.py): the media rung's verdict before a link is
returned, and what the patient's own WebRTC check and the call then show.

- Wi-Fi phone: the rung said ``same-network`` (measured, the LAN pair) before the first link was
  returned; the patient's check passes with a candidate pair shown in the dashboard; video both ways.
- 4G phone through the ssh tunnel WITHOUT media forwarding: the page loads and signalling connects
  through the vps, but the patient's check fails with the plain explanation — and linkpronto had said
  so (MEDIA_SAME_NETWORK_ONLY) before the link was sent.
- 4G phone WITH ``ssh_forward_media`` (ICE/TCP through ``ssh -R``, node_ip = the vps's carrier
  address): the rung proved ``anywhere`` through the vps before the link was returned; video both ways.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.clinic import PHONE, Clinic, LinkprontoInHost
from fixtures.netns import Host

pytestmark = pytest.mark.real_livekit

PEER = str(Path(__file__).resolve().parents[1] / "helpers" / "rtc_peer.py")


def start_peer(host: Host, lp: LinkprontoInHost, link_id: str, seconds: float) -> subprocess.Popen[str]:
    """The professional (livekit.rtc) inside ``host`` with a real host token for the link's room."""
    grant = lp.admin.post(f"/api/consultation-links/{link_id}/host-token").json()
    proc = subprocess.Popen(host.argv([sys.executable, PEER]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=str(Path(PEER).parents[1]),
                            env={"PYTHONPATH": str(Path(PEER).parents[1]), "PATH": "/usr/bin:/bin"})
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"url": grant["livekit_url"], "token": grant["access_token"],
                                 "seconds": seconds}) + "\n")
    proc.stdin.close()
    proc.stdin = None  # communicate() reads stdout only
    return proc


def peer_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=90)
    line = next((x for x in out.splitlines() if x.startswith("RTC-PEER ")), None)
    assert line is not None, out
    return dict(json.loads(line[len("RTC-PEER "):]))


def media_check(page: Any) -> dict[str, Any]:
    page.wait_for_function("() => window.__linkpronto && window.__linkpronto.mediaCheck()", timeout=30000)
    return dict(page.evaluate("async () => await window.__linkpronto.mediaCheck()"))


FRAMES_DECODED = """async () => {
  const room = window.__linkpronto.room();
  if (!room) return 0;
  let n = 0;
  for (const p of room.remoteParticipants.values()) {
    for (const pub of p.trackPublications.values()) {
      const tr = pub.track;
      if (!tr || tr.kind !== "video" || !tr.receiver) continue;
      (await tr.receiver.getStats()).forEach((s) => { if (s.type === "inbound-rtp") n += s.framesDecoded || 0; });
    }
  }
  return n;
}"""


def wait_frames(page: Any, timeout_s: float = 25.0) -> int:
    deadline = time.monotonic() + timeout_s
    n = 0
    while time.monotonic() < deadline:
        n = int(page.evaluate(FRAMES_DECODED))
        if n > 0:
            return n
        page.wait_for_timeout(250)
    return n


@pytest.fixture(scope="module")
def pw() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def phone_page(pw: Any, clinic: Clinic, host: Host, tmp: Path, lang: str = "pt-BR") -> tuple[Any, Any]:
    browser = pw.chromium.launch(executable_path=str(clinic.chromium(host, tmp)), args=clinic.chromium_args())
    ctx = browser.new_context(viewport=PHONE, locale=lang)
    return browser, ctx.new_page()


def link_media_check(lp: LinkprontoInHost, link_id: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dc = lp.admin.get(f"/api/consultation-links/{link_id}").json().get("device_check")
        result = (dc or {}).get("result", dc) or {}
        if isinstance(result, dict) and result.get("media"):
            return dict(result["media"])
        time.sleep(0.2)
    raise AssertionError(f"no media check reported for {link_id}")


def open_dashboard(lp: LinkprontoInHost, page: Any) -> None:
    login = lp.admin.post("/api/dashboard-login")
    assert login.status_code == 200, login.text
    from urllib.parse import urlsplit

    one_time = urlsplit(login.json()["url"])  # printed for 127.0.0.1; here the admin API is on the LAN
    page.goto(f"{lp.admin_url}{one_time.path}?{one_time.query}")


@pytest.fixture(scope="module")
def lp_lan(clinic: Clinic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinkprontoInHost]:
    lp = clinic.linkpronto(tmp_path_factory.mktemp("lan") / "data").start()
    try:
        yield lp
    finally:
        lp.stop()


def test_wifi_phone_video_both_ways_and_the_rung_said_same_network_first(
        clinic: Clinic, lp_lan: LinkprontoInHost, pw: Any, tmp_path: Path) -> None:
    lp = lp_lan
    lp.wait_state("ready", 150)  # ready needs the rung's first measurement for this URL
    link = lp.create_link(wait_s=60)
    media = next(c for c in link["checks"] if c["name"] == "media")
    assert media["ok"] and media["required"], media
    status = lp.status()
    assert status["media"]["measured"] is True and status["media"]["reach"] == "same-network", status["media"]
    assert status["media"]["candidate"]["address"].startswith(clinic.laptop_ip + ":")
    assert any(p["code"] == "MEDIA_SAME_NETWORK_ONLY" for p in status["problems"])

    browser, page = phone_page(pw, clinic, clinic.wifi_phone, tmp_path)
    try:
        page.goto(link["url"])
        check = media_check(page)
        assert check["ok"] and check["status"] == "passed", check
        assert check["packets_sent"] > 0 and check["black"] is False
        assert check["candidate"]["address"].startswith(clinic.laptop_ip + ":"), check
        assert page.locator("#media-check").get_attribute("data-ok") == "true"
        reported = link_media_check(lp, link["id"])
        assert reported["ok"] and reported["candidate"]["type"], reported

        # The dashboard shows it per link, in Chromium.
        dash = page.context.new_page()
        open_dashboard(lp, dash)
        line = dash.locator(f'tr[data-id="{link["id"]}"] [data-patient-media]')
        line.wait_for(timeout=15000)
        assert line.get_attribute("data-patient-media") == "passed"
        text = line.inner_text()
        assert text.startswith("Vídeo do paciente: passou (") and ("UDP" in text or "TCP" in text), text
        dash.close()

        peer = start_peer(clinic.laptop, lp, link["id"], seconds=20)
        page.locator("#join").click()
        assert wait_frames(page) > 0  # the professional's video reaches the patient
        got = peer_result(peer)
        assert got["frames_received"] > 0, got  # ...and the patient's reaches the professional
    finally:
        browser.close()


def test_4g_phone_without_media_forwarding_loads_but_video_fails_and_linkpronto_said_so(
        clinic: Clinic, lp_lan: LinkprontoInHost, pw: Any, tmp_path: Path) -> None:
    lp = lp_lan
    link = lp.create_link(wait_s=60)
    media = next(c for c in link["checks"] if c["name"] == "media")
    assert media["ok"] and "only devices on this network" in media["detail"], media  # said before it was sent
    assert any(p["code"] == "MEDIA_SAME_NETWORK_ONLY" for p in lp.status()["problems"])

    browser, page = phone_page(pw, clinic, clinic.phone_4g, tmp_path)
    try:
        res = page.goto(link["url"])
        assert res is not None and res.status == 200  # the page loads through the vps
        check = media_check(page)
        # Signalling crossed the tunnel (a probe token was minted and connect got to ICE), media did not.
        assert not check["ok"] and check["status"] == "failed" and check["reason"] in ("ice", "no_packets"), check
        assert check.get("signalled") is True, check  # signalling did cross the vps
        el = page.locator("#media-check")
        assert el.get_attribute("data-ok") == "false"
        assert "não consegue enviar vídeo" in el.inner_text()
        reported = link_media_check(lp, link["id"])
        assert reported["ok"] is False
        assert lp.admin.get(f"/api/consultation-links/{link['id']}").json()["status"] == "ready"  # still valid

        # The professional's dashboard (on the laptop's LAN: the 4G phone cannot reach it, by design).
        office, dash = phone_page(pw, clinic, clinic.wifi_phone, tmp_path / "office")
        open_dashboard(lp, dash)
        line = dash.locator(f'tr[data-id="{link["id"]}"] [data-patient-media]')
        line.wait_for(timeout=15000)
        assert line.get_attribute("data-patient-media") == "failed"
        assert "não passou — o celular não alcança o servidor de vídeo" in line.inner_text()
        fix = dash.locator(f'tr[data-id="{link["id"]}"] [data-patient-media-fix]')
        assert "ssh_forward_media" in fix.inner_text()
        office.close()
    finally:
        browser.close()


@pytest.fixture(scope="module")
def lp_fwd(clinic: Clinic, lp_lan: LinkprontoInHost,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinkprontoInHost]:
    lp_lan.stop()  # one linkpronto on the laptop at a time (fixed ports)
    lp = clinic.linkpronto(tmp_path_factory.mktemp("fwd") / "data", settings={
        "tunnel": {"ssh_forward_media": True},
        "livekit": {"node_ip": clinic.vps_carrier_ip},
    }).start()
    try:
        lp.wait_state("ready", 150)
        yield lp
    finally:
        lp.stop()


def test_4g_phone_with_ssh_forward_media_video_both_ways_through_the_vps(
        clinic: Clinic, lp_fwd: LinkprontoInHost, pw: Any, tmp_path: Path) -> None:
    lp = lp_fwd
    link = lp.create_link(wait_s=60)
    media = next(c for c in link["checks"] if c["name"] == "media")
    assert media["ok"] and media["required"], media  # measured before the link was returned
    assert lp.status()["media"]["measured"] is True
    # The phone outside reaches only the vps: its media goes to the forwarded ICE/TCP address.
    _video_both_ways_through_the_vps(clinic, lp, link, clinic.phone_4g, pw, tmp_path, peer_seconds=25)


def test_the_rung_proves_the_forwarded_path_through_the_vps(clinic: Clinic, lp_fwd: LinkprontoInHost) -> None:
    """The rung runs on the laptop, next to LiveKit, yet its pair is TCP to the vps's forwarded address:
    with ssh_forward_media LiveKit runs ICE lite, so it never reaches the probe's own host candidates."""
    m = lp_fwd.status()["media"]
    assert m["measured"] is True and m["reach"] == "anywhere", m
    assert m["candidate"]["protocol"] == "tcp" and m["candidate"]["address"].startswith(clinic.vps_carrier_ip + ":")


def test_wifi_phone_with_ssh_forward_media_gets_video_through_the_vps_too(
        clinic: Clinic, lp_fwd: LinkprontoInHost, pw: Any, tmp_path: Path) -> None:
    """What ICE lite costs (livekit/local.py forwards_media): LiveKit no longer reaches a phone on this
    Wi-Fi directly, so that phone's media takes the same forwarded ICE/TCP path through the vps —
    the path the rung proved. It still gets video."""
    link = lp_fwd.create_link(wait_s=60)
    _video_both_ways_through_the_vps(clinic, lp_fwd, link, clinic.wifi_phone, pw, tmp_path, peer_seconds=20)


def _video_both_ways_through_the_vps(clinic: Clinic, lp: LinkprontoInHost, link: dict[str, Any], phone: Host,
                                     pw: Any, tmp_path: Path, *, peer_seconds: float) -> None:
    """The phone's media check passes over TCP to the vps's forwarded address, then it joins and
    video flows both ways with the laptop's peer."""
    browser, page = phone_page(pw, clinic, phone, tmp_path)
    try:
        page.goto(link["url"])
        check = media_check(page)
        assert check["ok"], check
        assert check["candidate"]["protocol"] == "tcp", check
        assert check["candidate"]["address"].startswith(clinic.vps_carrier_ip + ":"), check
        peer = start_peer(clinic.laptop, lp, link["id"], seconds=peer_seconds)
        page.locator("#join").click()
        assert wait_frames(page, 30) > 0
        got = peer_result(peer)
        assert got["frames_received"] > 0, got
    finally:
        browser.close()
