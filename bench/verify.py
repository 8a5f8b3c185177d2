"""Benchmark: the verification ladder, warm link creation, and cold start — with baselines.

- ``ladder``: a fresh verification ladder (every rung, new nonce and probe token) through a real
  ``ssh -R`` tunnel to a local sshd, N runs: median/p90/max. Target: ≤ 50 ms.
- ``warm_create``: ``POST /api/consultation-links`` with verification cached (sequential): p50/p99.
  Target: p50 ≤ 5 ms. Baseline: ``GET /api/status`` on the same listener.
- ``creates_spread``: with the DEFAULT ``verify`` settings (max_age 10 s, re-run every 7 s), creates
  spread at random over 120 s on a ready stack through the ssh tunnel: p50/p99/max and the count of
  202. Target: zero 202 and max ≤ one ladder run (median, same run) + 50 ms. Baseline: ``GET
  /api/status`` in the same run.
- ``cold_start``: ``linkpronto up`` (LiveKit = the test double as ``livekit-server`` in local mode,
  tunnel = ssh) from process start to ``ready``, beside each child's own start time measured in the
  same run (the double alone to ``GET /`` OK; a bare ``ssh -R`` until its forwarded port answers),
  and the orchestrator's imports alone in a fresh interpreter. Target: ≤ 1.5 s.

Needs Debian's openssh-server. Prints one JSON document.
Usage: python bench/verify.py [--runs 30] [--spread-seconds 120] [--cold-rounds 5] [--only creates|cold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from doubles.livekit_server import run_double  # noqa: E402
from fixtures.sshd import SshServer  # noqa: E402
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for  # noqa: E402
from helpers.net import free_port  # noqa: E402

DOUBLE = ROOT / "tests" / "doubles" / "livekit_server.py"


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s) * 1000, 2),
        "p90_ms": round(s[int(0.9 * (len(s) - 1))] * 1000, 2),
        "p99_ms": round(s[int(0.99 * (len(s) - 1))] * 1000, 2),
        "max_ms": round(s[-1] * 1000, 2),
    }


def ssh_tunnel(sshd: SshServer) -> dict[str, Any]:
    return {
        "provider": "ssh",
        "ssh_target": sshd.target,
        "ssh_remote_port": free_port(),
        "ssh_options": sshd.client_options(),
    }


async def ladder_and_warm_create(runs: int, sshd: SshServer) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lp-bench-verify-"))
    with run_double({TEST_KEY: TEST_SECRET}) as double:
        tunnel = ssh_tunnel(sshd)
        settings = settings_for(tmp / "d", livekit_url=double.url, tunnel=tunnel, verify={"max_age": "10m", "interval": "9m"})
        async with run_lp(settings) as lp:
            await lp.wait_state("ready", timeout=30)
            for _ in range(3):
                await lp.stack.run_ladder()
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                result = await lp.stack.run_ladder()
                samples.append(time.perf_counter() - t0)
                assert result.ok, [c.to_json() for c in result.checks]
            per_check: dict[str, list[float]] = {}
            for c in result.checks:
                per_check.setdefault(c.name, []).append(c.duration_ms)
            # Warm create measured by wrk (a C client, one connection): the server's latency.
            token = lp.secrets.admin_token
            warm = await wrk_c1(
                f"{lp.running.admin_url}/api/consultation-links",
                json.dumps({"professional_id": "bench", "wait_s": 0}),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            status = await wrk_c1(f"{lp.running.admin_url}/api/status", None, {"Authorization": f"Bearer {token}"})
    return {
        "ladder_through_ssh": {**stats(samples), "last_run_checks_ms": {k: round(v[-1], 2) for k, v in per_check.items()}},
        "warm_create_wrk_c1": warm,
        "warm_create_baseline_status_wrk_c1": status,
        "targets": {
            "ladder_median_le_50ms": statistics.median(samples) <= 0.050,
            "warm_create_p50_le_5ms": warm["p50_ms"] <= 5,
        },
    }


async def creates_spread(sshd: SshServer, seconds: float) -> dict[str, Any]:
    """Creates at random moments over ``seconds`` with the product's default verify settings."""
    import random

    tmp = Path(tempfile.mkdtemp(prefix="lp-bench-spread-"))
    rng = random.Random(7)
    with run_double({TEST_KEY: TEST_SECRET}) as double:
        tunnel = ssh_tunnel(sshd)
        settings = settings_for(tmp / "d", livekit_url=double.url, tunnel=tunnel)
        async with run_lp(settings) as lp:
            await lp.wait_state("ready", timeout=30)
            ladder = []
            for _ in range(10):
                t0 = time.perf_counter()
                await lp.stack.run_ladder()
                ladder.append(time.perf_counter() - t0)
            latencies, baseline, codes = [], [], []
            runs_before = lp.stack.proofs.runs
            # How many creates found no proof that counted and waited for a ladder run (target: 0).
            waited: list[float] = []
            wait_fresh = lp.stack.proofs.wait_fresh

            async def counted_wait(timeout: float) -> Any:
                t0 = time.perf_counter()
                try:
                    return await wait_fresh(timeout)
                finally:
                    waited.append(time.perf_counter() - t0)

            lp.stack.proofs.wait_fresh = counted_wait
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while loop.time() < end:
                await asyncio.sleep(rng.uniform(0.05, 1.95))
                t0 = time.perf_counter()
                res = await lp.admin.post("/api/consultation-links", json={"professional_id": "bench"})
                latencies.append(time.perf_counter() - t0)
                codes.append(res.status_code)
                t0 = time.perf_counter()
                await lp.admin.get("/api/status")
                baseline.append(time.perf_counter() - t0)
            ladder_runs = lp.stack.proofs.runs - runs_before
    one_ladder = statistics.median(ladder)
    count_202 = codes.count(202)
    worst = max(latencies)
    return {
        "verify_settings": {"max_age_s": settings.verify.max_age, "interval_s": settings.verify.interval},
        "seconds": seconds,
        "creates": {**stats(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 2)},
        "count_201": codes.count(201),
        "count_202": count_202,
        "other_status": sorted({c for c in codes if c not in (201, 202)}),
        "baseline_get_status": stats(baseline),
        "one_ladder_run_through_ssh": stats(ladder),
        "background_ladder_runs": ladder_runs,
        "creates_that_waited_for_a_ladder": len(waited),
        "longest_wait_for_a_ladder_ms": round(max(waited) * 1000, 2) if waited else 0.0,
        "meets_target": count_202 == 0 and set(codes) == {201} and worst <= one_ladder + 0.050,
    }


async def wrk_c1(url: str, body: str | None, headers: dict[str, str], seconds: int = 8) -> dict[str, Any]:
    """``wrk -t1 -c1 --latency`` against a server running in this process's event loop."""
    from links import _ms, wrk_script  # bench/links.py: the same wrk script and output parsing

    script = wrk_script(201 if body is not None else 200, "POST" if body is not None else "GET", body, headers)
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", "-s", script, url,
            stdout=asyncio.subprocess.PIPE,
        )
        out = (await proc.communicate())[0].decode()
    finally:
        os.unlink(script)
    res: dict[str, Any] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            res[f"p{parts[0][:-1]}_ms"] = _ms(parts[1])
        elif "requests in" in line:
            res["requests"] = int(parts[0])
    return res


def time_double_alone() -> float:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(DOUBLE), "--port", str(port), "--keys", f"{TEST_KEY}: {TEST_SECRET}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).text == "OK":
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(5)


def time_import_of(mods: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {mods}"], check=True)
    return time.perf_counter() - t0


def time_imports() -> float:
    """A fresh interpreter importing what `linkpronto up` imports, and nothing else."""
    mods = "linkpronto.cli, linkpronto.live, linkpronto.orchestrator, linkpronto.web.admin, linkpronto.web.public, " \
        "linkpronto.gateway.rtc, linkpronto.gateway.app_proxy, linkpronto.tunnels.ssh, linkpronto.livekit.local"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {mods}"], check=True)
    return time.perf_counter() - t0


def time_bare_ssh(sshd: SshServer, origin_port: int) -> float:
    remote = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["ssh", "-N", "-T", "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes", *sshd.client_options(),
         "-p", str(sshd.port), "-R", f"127.0.0.1:{remote}:127.0.0.1:{origin_port}", f"{sshd.user}@127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{remote}/_linkpronto/healthz", timeout=0.5).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(5)


def cold_start(sshd: SshServer, rounds: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="lp-bench-cold-"))
    script = tmp / "bin" / "livekit-server"
    script.parent.mkdir(parents=True)
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -u {DOUBLE} \"$@\"\n")
    script.chmod(0o755)
    ups, listening, doubles, bare, imports, off_path, bare_python = [], [], [], [], [], [], []
    for r in range(rounds):
        public, admin = free_port(), free_port()
        data = tmp / f"data{r}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LINKPRONTO_", "LIVEKIT_"))}
        env.update(
            LINKPRONTO_SERVER_DATA_DIR=str(data), LINKPRONTO_SERVER_ADMIN_PORT=str(admin),
            LINKPRONTO_SERVER_PUBLIC_PORT=str(public), LINKPRONTO_LIVEKIT_MODE="local",
            LINKPRONTO_LIVEKIT_BINARY=str(script), LINKPRONTO_LIVEKIT_PORT=str(free_port()),
            LINKPRONTO_LIVEKIT_TCP_PORT=str(free_port()), LINKPRONTO_LIVEKIT_UDP_PORT=str(free_port()),
            LINKPRONTO_TUNNEL_PROVIDER="ssh", LINKPRONTO_TUNNEL_SSH_TARGET=sshd.target,
            LINKPRONTO_TUNNEL_SSH_REMOTE_PORT=str(free_port()),
            LINKPRONTO_TUNNEL_SSH_OPTIONS=" ".join(sshd.client_options()),
        )
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "linkpronto", "up"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            token = data / "admin-token"
            answered = False
            while True:
                try:
                    if token.exists():
                        st = httpx.get(f"http://127.0.0.1:{admin}/api/status", timeout=1,
                                       headers={"Authorization": "Bearer " + token.read_text().strip()}).json()
                        if not answered:
                            answered = True
                            listening.append(time.perf_counter() - t0)
                        if st["state"] == "ready":
                            ups.append(time.perf_counter() - t0)
                            break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.perf_counter() - t0 > 60:
                    raise SystemExit("linkpronto up did not become ready in 60 s")
                time.sleep(0.01)
            bare.append(time_bare_ssh(sshd, public))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        doubles.append(time_double_alone())
        imports.append(time_imports())
        off_path.append(time_import_of("livekit.api, yaml"))  # on the path to ready in 0.1.0, not now
        bare_python.append(time_import_of("sys"))
    return {
        "up_to_ready": stats(ups),
        "up_to_admin_api_answering": stats(listening),
        "children_own_start": {"livekit_double_to_ok": stats(doubles), "bare_ssh_R_to_serving": stats(bare)},
        "orchestrator_python_imports_alone": stats(imports),
        "imports_taken_off_the_path_livekit_api_yaml": stats(off_path),
        "bare_python_start": stats(bare_python),
        "note": "up_to_ready includes the orchestrator's own Python start-up and imports (measured alone above)",
        "target_up_le_1_5s": statistics.median(ups) <= 1.5,
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cold-rounds", type=int, default=5)
    ap.add_argument("--spread-seconds", type=float, default=120.0)
    ap.add_argument("--only", choices=("ladder", "creates", "cold"), default=None)
    args = ap.parse_args()
    sshd = SshServer().start()
    out: dict[str, Any] = {}
    try:
        if args.only in (None, "ladder"):
            out.update(await ladder_and_warm_create(args.runs, sshd))
        if args.only in (None, "creates"):
            out["creates_spread"] = await creates_spread(sshd, args.spread_seconds)
        if args.only in (None, "cold"):
            out["cold_start"] = await asyncio.to_thread(cold_start, sshd, args.cold_rounds)
    finally:
        sshd.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
