"""What the real-media tests and ``bench/livekit.py`` ask of a page: WebRTC stats, remote-frame pixels,
the patient's and the professional's joins. Plain functions over Playwright's sync ``Page``."""

from __future__ import annotations

import struct
import time
import zlib
from typing import Any

from playwright.sync_api import Page

#: Every RTCPeerConnection the page makes is kept in ``window.__pcs`` (getStats() of the real call).
RECORD_PCS = """
(() => {
  const Orig = window.RTCPeerConnection;
  if (!Orig || Orig.__lpRecorded) return;
  window.__pcs = [];
  class Recorded extends Orig {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  }
  Recorded.__lpRecorded = true;
  window.RTCPeerConnection = Recorded;
})();
"""

STATS = """
async () => {
  let frames = 0, audio = 0, pcs = 0;
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === "closed") continue;
    pcs += 1;
    const report = await pc.getStats();
    report.forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      if (r.kind === "video") frames += r.framesDecoded || 0;
      if (r.kind === "audio") audio += r.packetsReceived || 0;
    });
  }
  return { frames, audio, pcs };
}
"""

LUMINANCE = """
(sel) => {
  const v = document.querySelector(sel);
  if (!v || !v.videoWidth) return -1;
  const c = document.createElement("canvas");
  c.width = 64; c.height = 48;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0, 64, 48);
  const d = g.getImageData(0, 0, 64, 48).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 4) s += 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
  return s / (d.length / 4);
}
"""

#: The professional's side, on the example app's own origin: its token route, the vendored livekit-client
#: (loaded from linkpronto's public listener), camera and microphone published, remote video in #remote.
PRO_JOIN = """
async ({ room, bundle }) => {
  const res = await fetch(`/api/livekit/token?room=${encodeURIComponent(room)}`);
  const body = await res.json();
  if (!res.ok) throw new Error(`token route: ${res.status} ${JSON.stringify(body)}`);
  if (!window.LivekitClient) {
    await new Promise((ok, ko) => {
      const s = document.createElement("script");
      s.src = bundle; s.onload = ok; s.onerror = () => ko(new Error("bundle"));
      document.head.append(s);
    });
  }
  const LK = window.LivekitClient;
  const r = (window.__room = new LK.Room());
  window.__states = [];
  r.on(LK.RoomEvent.ConnectionStateChanged, (s) => window.__states.push(s));
  r.on(LK.RoomEvent.TrackSubscribed, (track) => {
    const el = track.attach();
    if (track.kind === "video") {
      el.id = "remote"; el.muted = true; el.playsInline = true;
      el.style = "position:fixed;top:0;left:0;width:320px;height:240px;z-index:99";
      document.getElementById("remote")?.remove();
    } else {
      el.hidden = true;
    }
    document.body.append(el);
  });
  await r.connect(body.url, body.token);
  await r.localParticipant.enableCameraAndMicrophone();
  return { url: body.url, identity: r.localParticipant.identity };
}
"""

PATIENT_REMOTE = "#remote-video video"
PRO_REMOTE = "#remote"


def stats(page: Page) -> dict[str, int]:
    return dict(page.evaluate(STATS))


def luminance(page: Page, selector: str) -> float:
    return float(page.evaluate(LUMINANCE, selector))


def wait_media(page: Page, timeout_s: float = 10.0, since: dict[str, int] | None = None) -> dict[str, int]:
    """Inbound video frames decoded and audio packets received (more than ``since``) within ``timeout_s``."""
    base = since or {"frames": 0, "audio": 0}
    deadline = time.monotonic() + timeout_s
    last: dict[str, int] = {}
    while time.monotonic() < deadline:
        last = stats(page)
        if last["frames"] > base["frames"] and last["audio"] > base["audio"]:
            return last
        time.sleep(0.1)
    raise AssertionError(f"no inbound media within {timeout_s} s: {last} (before: {base})")


def frames_flowing(page: Page, timeout_s: float) -> float:
    """Seconds until two samples 300 ms apart show the decoded-frame count growing (frames arriving *now*)."""
    start = time.monotonic()
    deadline = start + timeout_s
    prev = stats(page)["frames"]
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = stats(page)["frames"]
        if now > prev > 0:
            return time.monotonic() - start
        prev = now
    raise AssertionError(f"frames not flowing within {timeout_s} s (last count {prev})")


def patient_join(page: Page, url: str, name: str = "Maria", timeout_ms: int = 60_000) -> dict[str, Any]:
    """Open the patient page, pass the device check, join; returns the join grant (the page's own POST)."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    page.wait_for_function("() => document.getElementById('preview').videoWidth > 0", timeout=timeout_ms)
    page.fill("#display-name", name)
    with page.expect_response(lambda r: r.url.endswith("/_linkpronto/api/join"), timeout=timeout_ms) as answer:
        page.click("#join")
    grant: dict[str, Any] = answer.value.json()
    page.wait_for_selector("#conn-state[data-state='connected']", timeout=timeout_ms)
    return grant


def pro_join(page: Page, app_origin: str, room: str, bundle: str, timeout_ms: int = 180_000) -> dict[str, Any]:
    page.goto(app_origin + "/", wait_until="domcontentloaded", timeout=timeout_ms)
    return dict(page.evaluate(PRO_JOIN, {"room": room, "bundle": bundle}))


def png_luminance(png: bytes) -> float:
    """Mean luminance (0-255) of an 8-bit RGB/RGBA non-interlaced PNG (what Chromium's screenshots are),
    decoded here so no imaging library is needed."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    total = 0.0
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        for x in range(0, stride, bpp):
            total += 0.2126 * line[x] + 0.7152 * line[x + 1] + 0.0722 * line[x + 2]
        prev = line
    return total / (width * height)
