"""Benchmark: the media rung, time to first frame by network, and creates with the rung on vs off.

Same run, real livekit-server v1.13.5, every WebRTC client inside network namespaces of our own:

- ``rung``: N rung runs (synthetic publisher + subscriber through linkpronto's public URL, the probe's
  libwebrtc in a namespace): duration and first-frame p50/p99.
- ``create``: ``POST /api/consultation-links`` on a ready stack, sequential, p50/p99, in interleaved
  phases: rung off (verify.media_interval = 0), rung on with a run in flight the whole phase (the
  worst case), rung on between runs. Target: p50 ratio (run in flight vs off) ≤ 1.1.
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
# Run as a script, bench/ is sys.path[0], and bench/livekit.py would shadow the livekit package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.append(str(ROOT / "tests"))  # appended: tests/livekit must not shadow the livekit package

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


async def _in_flight(keeper: Any, url: str, stop: asyncio.Event) -> int:
    """Rung runs back to back until ``stop``: a run is in flight for every create of the phase."""
    n = 0
    while not stop.is_set():
        await keeper.run_once(url)
        n += 1
    return n


async def part_rung(runs: int, n_creates: int, block: int = 10) -> dict[str, Any]:
    """Two stacks on the same LiveKit, alive together: rung on (``media_interval`` 1 h, so the bench
    alone decides when a run happens) and rung off (0). Creates are measured in interleaved phases of
    ``block`` creates — off, on with a rung run in flight the whole phase (the worst case: with the
    default 60 s cadence a run, ~1 s, overlaps ~2 % of creates), on with no run in flight — so the
    other engineers' load on this shared machine drifts into all three alike."""
    import tempfile

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

            def settings(interval: str) -> Any:
                port = free_port()
                return settings_for(Path(tempfile.mkdtemp()) / "d", livekit_url=lk.url, public_port=port,
                                    server={"public_bind": root_ip},
                                    tunnel={"provider": "static", "static_url": f"http://{root_ip}:{port}"},
                                    livekit={"node_ip": lk.ip}, verify={"media_interval": interval})

            async with run_lp(settings("1h")) as on, run_lp(settings("0")) as off:
                status = await on.wait_state("ready", timeout=60)
                await off.wait_state("ready", timeout=60)
                keeper = on.stack.media
                assert keeper is not None and off.stack.media is None
                url = status["public_url"]
                durations, ffm = [], []
                for _ in range(runs):
                    r = await keeper.run_once(url)
                    durations.append(r.duration_ms)
                    if r.first_frame_ms is not None:
                        ffm.append(r.first_frame_ms)
                result["rung"] = {"duration": pct(durations), "first_frame": pct(ffm),
                                  "reach": r.reach, "candidate": r.candidate.to_json() if r.candidate else None}
                samples: dict[str, list[float]] = {"off": [], "on_run_in_flight": [], "on_idle": []}
                rung_runs = 0
                for _ in range(max(1, n_creates // block)):
                    samples["off"] += await creates(off, block)
                    stop = asyncio.Event()
                    bg = asyncio.create_task(_in_flight(keeper, url, stop))
                    while not keeper.running:
                        await asyncio.sleep(0.01)
                    samples["on_run_in_flight"] += await creates(on, block)
                    stop.set()
                    rung_runs += await bg
                    samples["on_idle"] += await creates(on, block)
                result["create_rung_off"] = pct(samples["off"])
                result["create_rung_on_run_in_flight"] = {**pct(samples["on_run_in_flight"]),
                                                          "rung_runs_during": rung_runs}
                result["create_rung_on_idle"] = pct(samples["on_idle"])
    off_p50 = result["create_rung_off"].get("p50_ms")
    if off_p50:
        for name in ("on_run_in_flight", "on_idle"):
            result[f"create_p50_ratio_{name}_vs_off"] = round(result[f"create_rung_{name}"]["p50_ms"] / off_p50, 3)
        result["meets_target"] = result["create_p50_ratio_on_run_in_flight_vs_off"] <= 1.1
    return result


def probe_from(host: Any, url: str, keys: dict[str, str], n: int) -> dict[str, Any]:
    from linkpronto.media.probe import probe_tokens
    from linkpronto.media.rung import probe_room

    key, secret = next(iter(keys.items()))
    ffm: list[float] = []
    errors: list[str] = []
    for _ in range(n):
        sub_token, pub_token = probe_tokens(key, secret, probe_room())
        args = {"url": url, "sub_token": sub_token, "pub_token": pub_token, "timeout_s": 12}
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
