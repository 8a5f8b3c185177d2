"""Real LiveKit through linkpronto vs straight to LiveKit, on the clinic topology (tests/fixtures/clinic.py).

Everything runs inside network namespaces of our own (198.18.0.0/15; needs root): ``linkpronto up`` in
the ``laptop`` (local mode, the real livekit-server v1.13.5, ``--tunnel ssh`` to a real sshd on the
``vps``), a second, bare livekit-server on the laptop's LAN address as the baseline ("straight to
LiveKit": same binary, same host, no gateway, no tunnel), Chromium on the ``wifi_phone`` and the laptop.

Measured in one run, printed as one JSON document:

* ``first_frame``: a phone opens the link → first decoded remote frame, over ``--joins`` joins each way.
  Through linkpronto: ``POST /_linkpronto/api/join`` on the public URL (the ssh tunnel's far end on the
  VPS), then livekit-client connects through the gateway and the tunnel, subscribes to the publisher
  already in the room (Chromium on the laptop, fake camera) and decodes a frame. Straight: the same
  client script, a token minted beforehand, the baseline server's own address. Both are timed in the
  page (``performance.now()`` from the first request to the first ``framesDecoded > 0`` in
  ``getStats()``, polled every 20 ms). Target: p50 through linkpronto ≤ straight + 150 ms.
  ``patient_page``: for reference, linkpronto's whole patient page (device check, ConnectionCheck, join)
  → first decoded frame, same joins count.
* ``signalling``: WebSocket connect (handshake done) and first signal message (the JoinResponse), from
  the LAN, through the gateway + tunnel vs straight; the p50 ratio.
* ``crash``: SIGKILL of the livekit-server linkpronto supervises, mid-call → both browsers (the patient
  page on the phone, the publisher on the laptop) decoding frames again, by livekit-client's own
  reconnect. Target ≤ 10 s (the worse of the two, every round). Rounds are ``--settle`` s apart so
  each is a first crash (the restart back-off grows on purpose for crashes in a row).

    sudo .venv/bin/python bench/livekit.py [--joins 10] [--ws 20] [--crashes 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This file is named livekit.py: its folder must not shadow the `livekit` SDK package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.clinic import PHONE, Clinic  # noqa: E402
from fixtures.livekit_real import RealLivekit  # noqa: E402
from media_real.browser import RECORD_PCS, frames_flowing, patient_join, stats, wait_media  # noqa: E402

BUNDLE = ROOT / "src" / "linkpronto" / "web" / "static" / "vendor" / "livekit-client.umd.js"
BASE_KEY = "APIbench"
BASE_SECRET = secrets.token_urlsafe(32)

def page_retry() -> dict[str, int]:
    """The reconnect schedule of linkpronto's pages (``RETRY_*`` in static/livekit.js), read from the file
    so the publisher here (standing in for the professional's page, call.js) cannot drift from it."""
    import re

    text = (ROOT / "src" / "linkpronto" / "web" / "static" / "livekit.js").read_text("utf-8")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"export const (RETRY_\w+) = (\d+);", text)}


#: ``retry``: page_retry() — the same reconnectPolicy as linkpronto's pages; null: livekit-client's default.
PUBLISH = """
async ({ url, token, retry }) => {
  const LK = window.LivekitClient;
  const reconnectPolicy = retry && { nextRetryDelayInMs: (c) => c.retryCount === 0 ? 0
    : c.elapsedMs < retry.RETRY_FAST_FOR_MS ? retry.RETRY_FAST_MS
    : c.elapsedMs < retry.RETRY_GIVE_UP_MS ? retry.RETRY_SLOW_MS : null };
  const r = (window.__room = new LK.Room(reconnectPolicy ? { reconnectPolicy } : {}));
  await r.connect(url, token);
  await r.localParticipant.enableCameraAndMicrophone();
  return r.localParticipant.identity;
}
"""

#: ``join`` (optional): the link token — the grant comes from linkpronto's join API, inside the timing.
SUBSCRIBE = """
async ({ url, token, join }) => {
  const LK = window.LivekitClient;
  const t0 = performance.now();
  if (join) {
    const res = await fetch(join.api, { method: "POST", headers: { "content-type": "application/json" },
                                        body: JSON.stringify({ token: join.token }) });
    const grant = await res.json();
    if (!res.ok) throw new Error(JSON.stringify(grant));
    url = grant.livekit_url; token = grant.access_token;
  }
  const joinMs = performance.now() - t0;
  let connectMs = 0;
  const before = window.__pcs.length;  // this join's own peer connections only
  const r = new LK.Room();
  await r.connect(url, token);
  connectMs = performance.now() - t0 - joinMs;
  for (;;) {
    let frames = 0;
    for (const p of window.__pcs.slice(before)) {
      const report = await p.getStats();
      report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video") frames += s.framesDecoded || 0; });
    }
    if (frames > 0) break;
    if (performance.now() - t0 > 30000) throw new Error("no frame in 30 s");
    await new Promise((ok) => setTimeout(ok, 20));
  }
  const ms = performance.now() - t0;
  await r.disconnect();
  return { ms, joinMs, connectMs };
}
"""


#: ws_times inside the laptop (``python -c``): the gateway alone, no tunnel, and LiveKit's own port.
IN_LAPTOP = """
import json, sys, time
from websockets.sync.client import connect
out = {}
for name, url in (("gateway_no_tunnel", sys.argv[1]), ("livekit_loopback", sys.argv[2])):
    times = []
    for tok in sys.argv[3:]:
        t0 = time.perf_counter()
        with connect(f"{url}?access_token={tok}&protocol=16&sdk=python&auto_subscribe=1", open_timeout=20) as ws:
            ws.recv(timeout=20)
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.2)
    out[name] = times
print(json.dumps(out))
"""


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {"n": len(values), "p50": round(statistics.median(ordered), 1), "p99": round(p99, 1),
            "min": round(ordered[0], 1), "max": round(ordered[-1], 1)}


def token(room: str, identity: str) -> str:
    from livekit import api

    grant = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    return (api.AccessToken(BASE_KEY, BASE_SECRET).with_identity(identity).with_grants(grant)
            .with_ttl(datetime.timedelta(hours=1)).to_jwt())


def ws_times(url: str, tokens: list[str]) -> dict[str, list[float]]:
    from websockets.sync.client import connect

    opened, first = [], []
    for tok in tokens:
        t0 = time.perf_counter()
        with connect(f"{url}?access_token={tok}&protocol=16&sdk=python&auto_subscribe=1", open_timeout=20) as ws:
            t1 = time.perf_counter()
            ws.recv(timeout=20)
            t2 = time.perf_counter()
        opened.append((t1 - t0) * 1000)
        first.append((t2 - t0) * 1000)
        time.sleep(0.2)
    return {"open": opened, "first_message": first}


def stalled(page: Any, timeout_s: float = 5.0) -> None:
    """Until the page's decoded-frame count stops growing (the server is gone)."""
    deadline = time.monotonic() + timeout_s
    prev = stats(page)["frames"]
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = stats(page)["frames"]
        if now == prev:
            return
        prev = now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--joins", type=int, default=10)
    parser.add_argument("--ws", type=int, default=20)
    parser.add_argument("--crashes", type=int, default=3)
    # linkpronto's restart back-off doubles on each crash and resets after 30 s ready
    # (RestartPolicy.reset_after_ready_s): wait that long so every round is a first crash.
    parser.add_argument("--settle", type=float, default=31.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="lp-bench-livekit-"))
    out: dict[str, Any] = {"bench": "livekit", "livekit_server": "v1.13.5", "topology": "clinic (fixtures/clinic.py)"}
    with Clinic("bk", workdir=work / "clinic") as clinic:
        lp = clinic.linkpronto(work / "data").start()
        t0 = time.monotonic()
        lp.wait_state("ready", 180)
        out["up_to_ready_s"] = round(time.monotonic() - t0, 2)
        base = RealLivekit({BASE_KEY: BASE_SECRET}, host=clinic.laptop, ip=clinic.laptop_ip,
                           workdir=work).start()
        try:
            link = lp.create_link(consultation_type="bench")
            link_token = link["url"].rsplit("/", 1)[1]
            host = lp.admin.post(f"/api/consultation-links/{link['id']}/host-token").json()
            with sync_playwright() as pw:
                laptop = pw.chromium.launch(executable_path=str(clinic.chromium(clinic.laptop, work)),
                                            args=clinic.chromium_args())
                phone = pw.chromium.launch(executable_path=str(clinic.chromium(clinic.wifi_phone, work)),
                                           args=clinic.chromium_args())
                # Publishers: one in the link's room (through linkpronto), one on the baseline server.
                pubs = []
                for url, tok in ((host["livekit_url"], host["access_token"]),
                                 (base.ws_url, token("baseline", "publisher"))):
                    ctx = laptop.new_context()
                    ctx.add_init_script(RECORD_PCS)
                    page = ctx.new_page()
                    page.goto("http://127.0.0.1:7880/")  # a secure origin on the laptop (getUserMedia)
                    page.add_script_tag(path=str(BUNDLE))
                    page.evaluate(PUBLISH, {"url": url, "token": tok, "retry": page_retry()})
                    pubs.append(page)

                sub_ctx = phone.new_context(viewport=PHONE, is_mobile=True)
                sub_ctx.add_init_script(RECORD_PCS)
                sub = sub_ctx.new_page()
                sub.goto(lp.public_url + "/_linkpronto/healthz")
                sub.add_script_tag(path=str(BUNDLE))
                runs: dict[str, list[dict[str, float]]] = {"via": [], "direct": []}
                for i in range(args.joins):  # interleaved, so machine load hits both alike
                    runs["via"].append(sub.evaluate(SUBSCRIBE, {"url": None, "token": None, "join": {
                        "api": lp.public_url + "/_linkpronto/api/join", "token": link_token}}))
                    runs["direct"].append(sub.evaluate(SUBSCRIBE, {
                        "url": base.ws_url, "token": token("baseline", f"sub-{i}"), "join": None}))
                via = [r["ms"] for r in runs["via"]]
                direct = [r["ms"] for r in runs["direct"]]
                out["first_frame_ms"] = {
                    "through_linkpronto_tunnel": summary(via), "straight_to_livekit": summary(direct),
                    # where the difference goes: the join API round trip (only through linkpronto) and
                    # livekit-client's connect (signalling round trips through the gateway + tunnel)
                    "join_api_ms": summary([r["joinMs"] for r in runs["via"]]),
                    "connect_ms": {"through_linkpronto_tunnel": summary([r["connectMs"] for r in runs["via"]]),
                                   "straight_to_livekit": summary([r["connectMs"] for r in runs["direct"]])},
                    "p50_delta_ms": round(statistics.median(via) - statistics.median(direct), 1),
                    "target_delta_ms": 150,
                    "meets_target": statistics.median(via) - statistics.median(direct) <= 150,
                }

                page_times = []
                for _ in range(max(3, args.joins // 2)):
                    ctx = phone.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
                    ctx.add_init_script(RECORD_PCS)
                    page = ctx.new_page()
                    t = time.monotonic()
                    patient_join(page, f"{lp.public_url}/_linkpronto/c/{link_token}")
                    wait_media(page, 30)
                    page_times.append((time.monotonic() - t) * 1000)
                    ctx.close()
                out["patient_page_open_to_first_frame_ms"] = summary(page_times)

                # Signalling WebSocket: through the gateway + tunnel vs straight (same server kind).
                via_ws = ws_times(lp.public_url.replace("http", "ws") + "/_linkpronto/livekit/rtc",
                                  [lp.admin.post(f"/api/consultation-links/{link['id']}/host-token").json()
                                   ["access_token"] for _ in range(args.ws)])
                direct_ws = ws_times(base.ws_url + "/rtc", [token("baseline", f"ws-{i}") for i in range(args.ws)])
                local_tokens = [lp.admin.post(f"/api/consultation-links/{link['id']}/host-token").json()
                                ["access_token"] for _ in range(args.ws)]
                inside = clinic.laptop.run([sys.executable, "-c", IN_LAPTOP,
                                            "ws://127.0.0.1:7801/_linkpronto/livekit/rtc", "ws://127.0.0.1:7880/rtc",
                                            *local_tokens], timeout=300)
                split = json.loads(inside.stdout) if inside.returncode == 0 else {"error": inside.stderr[-500:]}
                out["signalling_ms"] = {
                    # first message, inside the laptop: linkpronto's gateway alone vs LiveKit's own port
                    "inside_laptop_first_message": {k: summary(v) for k, v in split.items()
                                                    if isinstance(v, list)} or split,
                    "through_linkpronto_tunnel": {k: summary(v) for k, v in via_ws.items()},
                    "straight_to_livekit": {k: summary(v) for k, v in direct_ws.items()},
                    "p50_ratio_open": round(statistics.median(via_ws["open"]) / statistics.median(direct_ws["open"]), 2),
                    "p50_ratio_first_message": round(statistics.median(via_ws["first_message"])
                                                     / statistics.median(direct_ws["first_message"]), 2),
                }

                # Crash: the patient page on the phone and the publisher on the laptop, in one call.
                ctx = phone.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
                ctx.add_init_script(RECORD_PCS)
                patient = ctx.new_page()
                patient_join(patient, f"{lp.public_url}/_linkpronto/c/{link_token}")
                wait_media(patient, 30)
                rounds = []
                for _ in range(args.crashes):
                    wait_media(pubs[0], 30)
                    old = lp.livekit_process()
                    old.kill()
                    killed = time.monotonic()
                    stalled(patient)  # the old call's last frames are out of the way first
                    frames_flowing(patient, 60)
                    frames_flowing(pubs[0], 60)
                    rounds.append(time.monotonic() - killed)
                    lp.wait_state("ready", 60)
                    time.sleep(args.settle)
                out["crash_to_both_decoding_s"] = {
                    "rounds": [round(r, 2) for r in rounds], "max": round(max(rounds), 2), "target_s": 10,
                    "median": round(statistics.median(rounds), 2), "page_reconnect_policy": page_retry(),
                    "settle_s_between_rounds": args.settle,
                    "meets_target": max(rounds) <= 10}
                laptop.close()
                phone.close()
        finally:
            base.stop()
            lp.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
