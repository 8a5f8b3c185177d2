"""Benchmark: the media rung, time to first frame by network, and creates with the rung on vs off.

Same run, real livekit-server v1.13.5, every WebRTC client inside network namespaces of our own:

- ``rung``: N rung runs (synthetic publisher + subscriber through linkpronto's public URL, the probe's
  libwebrtc in a namespace): duration and first-frame p50/p99.
- ``create``: ``POST /api/consultation-links`` on a ready stack, sequential, p50/p99 — with the rung
  on and a rung run kept in flight the whole time, vs the rung off (verify.media_interval = 0).
  Target: p50 ratio ≤ 1.1.
- ``first_frame``: in the clinic topology (fixtures/clinic.py, ``linkpronto up`` in the laptop, ssh -R
  to the vps), the probe run from the Wi-Fi phone's namespace and from the 4G phone's through the
  public URL on the vps; without media forwarding and with ``ssh_forward_media``. A run that decodes
  no frame reports ``null`` and its error.

Usage: python bench/media.py [--runs 10] [--creates 60] [--skip-clinic]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.livekit_real import RealLivekit  # noqa: E402
from fixtures.netns import IP, Topology  # noqa: E402
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for  # noqa: E402
from helpers.net import free_port  # noqa: E402


def pct(samples: list[float]) -> dict[str, Any]:
    s = sorted(samples)
    if not s:
        return {"n": 0}
    return {"n": len(s), "p50_ms": round(statistics.median(s), 1), "p99_ms": round(s[int(0.99 * (len(s) - 1))], 1),
            "max_ms": round(s[-1], 1)}


async def creates(lp: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "bench"})
        assert res.status_code == 201, res.text  # only a ready link counts
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def part_rung(runs: int, n_creates: int) -> dict[str, Any]:
    from linkpronto.media import wiring
    from linkpronto.media.rung import MediaRung

    result: dict[str, Any] = {}
    with Topology("bmd") as topo:
        lan = topo.network("lan", "198.18.60.0/24")
        lk_host, rung_host = topo.host("lk"), topo.host("rung")
        topo.attach(lk_host, lan, "198.18.60.2", default=True)
        topo.attach(rung_host, lan, "198.18.60.3", default=True)
        root_ip = "198.18.60.254"
        topo.link_root(lan, root_ip)
        wiring.MediaRung = functools.partial(MediaRung, launcher=(IP, "netns", "exec", rung_host.ns))  # type: ignore[misc]
        with RealLivekit({TEST_KEY: TEST_SECRET}, host=lk_host, ip="198.18.60.2") as lk:
            import tempfile

            for interval in ("60s", "0"):
                port = free_port()
                settings = settings_for(Path(tempfile.mkdtemp()) / "d", livekit_url=lk.url, public_port=port,
                                        server={"public_bind": root_ip},
                                        tunnel={"provider": "static", "static_url": f"http://{root_ip}:{port}"},
                                        livekit={"node_ip": lk.ip}, verify={"media_interval": interval})
                async with run_lp(settings) as lp:
                    status = await lp.wait_state("ready", timeout=60)
                    keeper = lp.stack.media
                    if keeper is not None:
                        durations, ffm = [], []
                        for _ in range(runs):
                            r = await keeper.run_once(status["public_url"])
                            durations.append(r.duration_ms)
                            if r.first_frame_ms is not None:
                                ffm.append(r.first_frame_ms)
                        result["rung"] = {"duration": pct(durations), "first_frame": pct(ffm),
                                          "reach": r.reach, "candidate": r.candidate.to_json() if r.candidate else None}
                        stop = asyncio.Event()

                        async def keep_running(url: str = status["public_url"], k: Any = keeper,
                                               stop: asyncio.Event = stop) -> int:
                            n = 0
                            while not stop.is_set():
                                await k.run_once(url)
                                n += 1
                            return n

                        bg = asyncio.create_task(keep_running())
                        await asyncio.sleep(0.5)
                        samples = await creates(lp, n_creates)
                        stop.set()
                        rung_runs = await bg
                        result["create_rung_on"] = {**pct(samples), "rung_runs_during": rung_runs}
                    else:
                        result["create_rung_off"] = pct(await creates(lp, n_creates))
    on, off = result.get("create_rung_on", {}), result.get("create_rung_off", {})
    if on.get("p50_ms") and off.get("p50_ms"):
        result["create_p50_ratio_on_vs_off"] = round(on["p50_ms"] / off["p50_ms"], 3)
        result["meets_target"] = result["create_p50_ratio_on_vs_off"] <= 1.1
    return result


def probe_from(host: Any, url: str, keys: dict[str, str], n: int) -> dict[str, Any]:
    from linkpronto.media.rung import probe_room

    key, secret = next(iter(keys.items()))
    ffm: list[float] = []
    errors: list[str] = []
    for _ in range(n):
        args = {"url": url, "room": probe_room(), "api_key": key, "api_secret": secret, "timeout_s": 12}
        p = subprocess.run(host.argv([sys.executable, "-m", "linkpronto.media.probe"]), input=json.dumps(args) + "\n",
                           capture_output=True, text=True, timeout=90)
        line = next((x for x in p.stdout.splitlines() if x.startswith("LINKPRONTO-PROBE ")), None)
        doc = json.loads(line[len("LINKPRONTO-PROBE "):]) if line else {"error": f"exit {p.returncode}"}
        if doc.get("first_frame_ms") is not None:
            ffm.append(float(doc["first_frame_ms"]))
        else:
            errors.append(str(doc.get("error"))[:120])
    return {"first_frame": pct(ffm), "failed_runs": len(errors), "errors": sorted(set(errors))}


def part_clinic(n: int) -> dict[str, Any]:
    import tempfile

    from fixtures.clinic import Clinic

    out: dict[str, Any] = {}
    with Clinic("bmc", workdir=Path(tempfile.mkdtemp())) as clinic:
        for label, settings in (("no_media_forwarding", {}),
                                ("ssh_forward_media", {"tunnel": {"ssh_forward_media": True},
                                                       "livekit": {"node_ip": clinic.vps_carrier_ip}})):
            data = Path(tempfile.mkdtemp()) / "data"
            lp = clinic.linkpronto(data, settings=settings).start()
            try:
                with contextlib.suppress(AssertionError):
                    lp.wait_state("ready", 120)
                keys = json.loads((data / "livekit.yaml").read_text())["keys"]
                url = lp.public_url.replace("http://", "ws://") + "/_linkpronto/livekit"
                out[label] = {"rung": lp.status().get("media"),
                              "wifi_phone": probe_from(clinic.wifi_phone, url, keys, n),
                              "4g_phone_via_vps": probe_from(clinic.phone_4g, url, keys, n)}
            finally:
                lp.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--creates", type=int, default=60)
    ap.add_argument("--skip-clinic", action="store_true")
    a = ap.parse_args()
    doc: dict[str, Any] = {"benchmark": "media", **asyncio.run(part_rung(a.runs, a.creates))}
    if not a.skip_clinic:
        doc["first_frame_by_network"] = part_clinic(max(3, a.runs // 2))
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
