"""Benchmark: issuing and joining links, against a baseline measured in the same run.

Runs ``linkpronto up`` as a real process (LiveKit = the test double, tunnel = static pointing at
the public listener, verification kept fresh so no probe runs per request), then measures with one
client process:

- latency, one request at a time, measured by ``wrk -t1 -c1 --latency`` (a C client, so the figure
  is the server's and not a Python client's), ≥ 2,000 requests each: ``POST /api/consultation-links``,
  ``POST /_linkpronto/api/join`` and the baseline ``GET /healthz``: p50, p90, p99;
- the same with an ``httpx`` client (sequential, 2,000 requests), which adds the client's own cost;
- throughput (``wrk -t2 -c16``) of the same three, and each one's ratio to the baseline.

Only the intended status counts as a success (201 for a create, 200 for a join and healthz): every
other answer (202 "preparing", 401, 422, 502...) is an error, reported by status, and any error makes
``meets_target`` false (bench/_status.py).

Prints one JSON document. Targets on a 2-core machine: create p50 ≤ 5 ms, p99 ≤ 20 ms; join ≥ 500/s;
no errors.
Usage: python bench/links.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
# bench/livekit.py would shadow the livekit package: this folder is not an import root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT / "tests"))

from doubles.livekit_server import run_double  # noqa: E402
from helpers.lp import TEST_KEY, TEST_SECRET  # noqa: E402
from helpers.net import free_port  # noqa: E402

sys.path.append(str(ROOT / "bench"))
from _status import Statuses, error_count, wrk_errors, wrk_script  # noqa: E402


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 3)

    return {"n": len(s), "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "max_ms": round(s[-1] * 1000, 3),
            "mean_ms": round(statistics.fmean(s) * 1000, 3)}


async def latency(client: httpx.AsyncClient, method: str, url: str, n: int, expected: int,
                  body: Any = None) -> dict[str, Any]:
    """Sequential requests; only ``expected`` counts as a success, every other status is an error."""
    samples: list[float] = []
    statuses = Statuses(expected)
    for _ in range(n):
        t0 = time.perf_counter()
        res = await client.request(method, url, json=body)
        samples.append(time.perf_counter() - t0)
        statuses.tally(res.status_code)
    return {**percentiles(samples), "errors": statuses.report()}


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * factor, 3)
    raise ValueError(text)


def wrk(url: str, method: str, body: str | None, headers: dict[str, str], expected: int, *, seconds: int,
        conns: int) -> dict[str, Any]:
    """Run wrk; returns requests/s, request count, (with one connection) the latency percentiles, and
    the answers other than ``expected`` (errors)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is required (Debian: apt-get install wrk)")
    script = wrk_script(expected, method, body, headers)
    try:
        out = subprocess.run(
            [exe, f"-t{min(conns, 2)}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url],
            capture_output=True, text=True, timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script)
    res: dict[str, Any] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            res["rps"] = float(parts[1])
        elif "requests in" in line:
            res["requests"] = int(parts[0])
        elif len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            res[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
    if "rps" not in res:
        raise SystemExit("wrk output not understood:\n" + out)
    res["errors"] = wrk_errors(out, expected)
    return res


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    n = max(args.requests, 2000)
    tmp = Path(tempfile.mkdtemp(prefix="lp-bench-"))
    public_port, admin_port = free_port(), free_port()
    with run_double({TEST_KEY: TEST_SECRET}) as double:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LINKPRONTO_", "LIVEKIT_"))}
        env.update(
            LINKPRONTO_SERVER_DATA_DIR=str(tmp / "data"),
            LINKPRONTO_SERVER_ADMIN_PORT=str(admin_port),
            LINKPRONTO_SERVER_PUBLIC_PORT=str(public_port),
            LINKPRONTO_SERVER_JOIN_FAILURES_PER_MINUTE="100000",
            LINKPRONTO_TUNNEL_PROVIDER="static",
            LINKPRONTO_TUNNEL_STATIC_URL=f"http://127.0.0.1:{public_port}",
            LINKPRONTO_LIVEKIT_MODE="external",
            LIVEKIT_URL=double.url,
            LIVEKIT_API_KEY=TEST_KEY,
            LIVEKIT_API_SECRET=TEST_SECRET,
            # Keep verification fresh for the whole run: we measure issuing, not probing.
            LINKPRONTO_VERIFY_MAX_AGE="10m",
            LINKPRONTO_VERIFY_INTERVAL="5m",
            # The double carries no media and there is no app page: those rungs would keep it from ready.
            LINKPRONTO_VERIFY_MEDIA_INTERVAL="0",
            LINKPRONTO_VERIFY_PAGE_BROWSER="off",
        )
        proc = subprocess.Popen([sys.executable, "-m", "linkpronto", "up"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            token_file = tmp / "data" / "admin-token"
            admin_url = f"http://127.0.0.1:{admin_port}"
            public_url = f"http://127.0.0.1:{public_port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if token_file.exists():
                        h = {"Authorization": "Bearer " + token_file.read_text().strip()}
                        st = httpx.get(admin_url + "/api/status", headers=h, timeout=2).json()
                        if st["state"] == "ready":
                            break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("linkpronto did not become ready")
                await asyncio.sleep(0.1)
            limits = httpx.Limits(max_keepalive_connections=32)
            async with httpx.AsyncClient(headers=h, limits=limits, timeout=30) as c:
                link = (await c.post(admin_url + "/api/consultation-links", json={"professional_id": "bench"})).json()
                token = link["url"].rsplit("/", 1)[1]
                for _ in range(200):  # warm-up
                    await c.get(public_url + "/_linkpronto/healthz")
                res: dict[str, Any] = {"requests": n}
                res["latency_httpx_sequential"] = {}
                py = res["latency_httpx_sequential"]
                py["healthz"] = await latency(c, "GET", public_url + "/_linkpronto/healthz", n, 200)
                py["create"] = await latency(
                    c, "POST", admin_url + "/api/consultation-links", n, 201, {"professional_id": "bench", "wait_s": 0}
                )
                py["join"] = await latency(c, "POST", public_url + "/_linkpronto/api/join", n, 200, {"token": token})
            body_join = json.dumps({"token": token})
            body_create = json.dumps({"professional_id": "bench", "wait_s": 0})
            jh = {"Content-Type": "application/json"}
            targets = {
                # (url, method, body, headers, the one status that counts as a success)
                "healthz": (public_url + "/_linkpronto/healthz", "GET", None, {}, 200),
                "create": (admin_url + "/api/consultation-links", "POST", body_create, {**h, **jh}, 201),
                "join": (public_url + "/_linkpronto/api/join", "POST", body_join, jh, 200),
            }
            # Latency one at a time, long enough for ≥ 2,000 requests even at 4 ms each.
            res["latency_wrk_c1"] = {k: wrk(*v, seconds=max(args.seconds, 10), conns=1) for k, v in targets.items()}
            c16 = {k: wrk(*v, seconds=args.seconds, conns=16) for k, v in targets.items()}
            rps = {k: r["rps"] for k, r in c16.items()}
            res["throughput_rps_wrk_c16"] = rps
            lat = res["latency_wrk_c1"]
            res["ratios_vs_healthz"] = {
                "create_p50": round(lat["create"]["p50_ms"] / lat["healthz"]["p50_ms"], 1),
                "join_p50": round(lat["join"]["p50_ms"] / lat["healthz"]["p50_ms"], 1),
                "create_rps": round(rps["create"] / rps["healthz"], 3),
                "join_rps": round(rps["join"] / rps["healthz"], 3),
            }
            # Every answer other than the intended status (201 create, 200 join/healthz) is an error.
            errors = {f"httpx/{k}": v["errors"]["unexpected"] for k, v in py.items()}
            errors |= {f"wrk_c1/{k}": error_count(v["errors"]) for k, v in lat.items()}
            errors |= {f"wrk_c16/{k}": error_count(v["errors"]) for k, v in c16.items()}
            res["errors"] = {
                "total": sum(errors.values()),
                "by_run": errors,
                "detail": {"httpx": {k: v["errors"] for k, v in py.items()},
                           "wrk_c1": {k: v["errors"] for k, v in lat.items()},
                           "wrk_c16": {k: v["errors"] for k, v in c16.items()}},
            }
            res["targets"] = {
                "create_p50_le_5ms": lat["create"]["p50_ms"] <= 5,
                "create_p99_le_20ms": lat["create"]["p99_ms"] <= 20,
                "join_ge_500_per_s": rps["join"] >= 500,
                "no_errors": res["errors"]["total"] == 0,
            }
            res["meets_target"] = all(res["targets"].values())
            print(json.dumps(res, indent=2))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
