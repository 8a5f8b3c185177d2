"""Benchmark: the user's Next.js app under linkpronto (issue 9), each figure beside a same-run baseline.

With ``examples/nextjs-pages`` under ``next dev`` (its npm install cached like the tests do), the LiveKit
test double as an external LiveKit and a ``static`` tunnel pointing at the public listener:

1. **First link.** Baseline: ``npx next dev`` alone, from spawn to the first 2xx of its link route
   (``/consultations/client/<x>``, a first compile). Then ``python -m linkpronto up --app "npx next dev"``,
   from spawn to the first ``200`` of the drop-in (a verified link). Both start without ``.next``.
   Target: up → first ready link ≤ the app's own time + 2 s.
2. **Create through the app.** The app's migrated ``POST /api/generate-consultation-token`` (app route →
   linkpronto's drop-in, a verified link each) p50/p99, sequential, beside the seed's OLD route shape
   answering directly (a random token and a URL from ``NEXT_PUBLIC_SITE_URL``, in the same dev server).
   Target: p50 ≤ 2× the direct route, 0 errors.
3. **The same with the data folder default** (issue 16): ``up`` run from the app's folder with no
   ``server.data_dir`` at all (``XDG_DATA_HOME`` pointed at a temporary folder, so the platform's user
   data folder is a throw-away one), 200 sequential creates through the app beside the old route, same
   client, same run. Reports where the data folder landed (``data_dir_in_project``): inside the project
   ``next dev`` watches it, and creates make it recompile (the 500s of issue 16, point 7).

Only intended statuses count as success (200 for both routes); anything else is counted as an error and
fails the target. Prints one JSON document. Usage: python bench/app.py [--requests 200] [--rounds 3]
(``--rounds 0`` skips the first-link section).
"""

from __future__ import annotations

import argparse
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
from helpers.lp import TEST_KEY, TEST_SECRET, cli_env  # noqa: E402
from helpers.net import free_port  # noqa: E402
from test_example_nextjs import prepare_example  # noqa: E402

LINK_PATH = "/consultations/client/{token}"
OLD_ROUTE = r"""
// The seed's route as it was: a token and a URL built from NEXT_PUBLIC_SITE_URL (no verification).
import crypto from "node:crypto";

export default function handler(req, res) {
  if (req.method !== "POST") return res.status(405).end();
  const token = crypto.randomBytes(16).toString("hex");
  const baseUrl = process.env.NEXT_PUBLIC_SITE_URL || "https://kalonconnect.com";
  const consultationUrl = `${baseUrl}/consultations/client/${token}`;
  const now = new Date();
  res.status(200).json({
    success: true, token, consultationUrl, qrCode: null,
    whatsappDeepLink: `https://wa.me/?text=${encodeURIComponent(consultationUrl)}`,
    shortMessage: consultationUrl, expiresAt: new Date(now.getTime() + 86400000).toISOString(),
    createdAt: now.toISOString(),
  });
}
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def q(p: float) -> float:
        return round(s[min(len(s) - 1, int(p * len(s)))] * 1000, 3)

    return {"n": len(s), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(s[-1] * 1000, 3),
            "mean_ms": round(statistics.fmean(s) * 1000, 3)}


def stop_tree(proc: subprocess.Popen[Any]) -> None:
    import psutil

    try:
        procs = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        p.kill()


def app_alone(app: Path, env: dict[str, str]) -> float:
    """Seconds from spawning ``next dev`` to the first 2xx of its link route."""
    shutil.rmtree(app / ".next", ignore_errors=True)
    port = free_port()
    npx = shutil.which("npx") or "npx"
    t0 = time.perf_counter()
    proc = subprocess.Popen([npx, "next", "dev", "-p", str(port)], cwd=app, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}" + LINK_PATH.replace("{token}", "bench-probe")
        deadline = t0 + 300
        while time.perf_counter() < deadline:
            try:
                if 200 <= httpx.get(url, timeout=120).status_code < 300:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit("next dev alone never answered its link route")
    finally:
        stop_tree(proc)


def start_up(app: Path, data: Path, double_url: str) -> tuple[subprocess.Popen[Any], float, int, int, Path]:
    """Spawn ``linkpronto up --app "npx next dev"`` (no ``.next``); returns once a ready link was issued:
    (process, seconds from spawn to the first 200 of the drop-in, admin port, app port, token file)."""
    shutil.rmtree(app / ".next", ignore_errors=True)
    public_port, admin_port, app_port = free_port(), free_port(), free_port()
    env = cli_env(data, double_url, public_port, admin_port,
                  LINKPRONTO_APP_COMMAND=f"npx next dev -p {app_port}", LINKPRONTO_APP_PORT=str(app_port),
                  LINKPRONTO_APP_LINK_PATH=LINK_PATH, NEXT_TELEMETRY_DISABLED="1")
    t0 = time.perf_counter()
    up = subprocess.Popen([sys.executable, "-m", "linkpronto", "up"], cwd=app, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    token_file = data / "admin-token"
    while time.perf_counter() - t0 < 300:
        if not token_file.exists():
            time.sleep(0.02)
            continue
        try:
            res = httpx.post(f"http://127.0.0.1:{admin_port}/api/generate-consultation-token",
                             json={"professionalId": "bench", "waitS": 60}, timeout=90,
                             headers={"Authorization": "Bearer " + token_file.read_text().strip()})
        except httpx.HTTPError:
            time.sleep(0.02)
            continue
        if res.status_code == 200:
            return up, time.perf_counter() - t0, admin_port, app_port, token_file
    stop_tree(up)
    raise SystemExit("up never issued a ready link")


BODY = {"professionalId": "bench", "clientId": "c", "consultationType": "psicoterapia"}


def interleaved(base: str, requests: int, admin: tuple[int, Path] | None) -> dict[str, Any]:
    """Old route, drop-in via the app (and the drop-in on the admin API when its token is known), one
    after the other for each request, same client: all see the same machine load."""
    old: list[float] = []
    new: list[float] = []
    direct_s: list[float] = []
    old_errors = new_errors = 0
    admin_client = None
    if admin is not None:
        admin_client = httpx.Client(base_url=f"http://127.0.0.1:{admin[0]}", timeout=60,
                                    headers={"Authorization": "Bearer " + admin[1].read_text().strip()})
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for _ in range(10):  # warm-up: compiled, connections open
                client.post("/api/old-generate-consultation-token", json=BODY)
                client.post("/api/generate-consultation-token", json=BODY)
            for _ in range(requests):
                t = time.perf_counter()
                res = client.post("/api/old-generate-consultation-token", json=BODY)
                elapsed = time.perf_counter() - t
                if res.status_code == 200 and res.json().get("success") is True:
                    old.append(elapsed)
                else:
                    old_errors += 1
                t = time.perf_counter()
                res = client.post("/api/generate-consultation-token", json=BODY)
                elapsed = time.perf_counter() - t
                if res.status_code == 200 and res.json().get("success") is True:
                    new.append(elapsed)
                else:
                    new_errors += 1
                if admin_client is not None:
                    t = time.perf_counter()
                    res = admin_client.post("/api/generate-consultation-token", json={**BODY, "waitS": 0})
                    if res.status_code == 200:
                        direct_s.append(time.perf_counter() - t)
    finally:
        if admin_client is not None:
            admin_client.close()
    p_old = percentiles(old) if old else {"n": 0, "p50_ms": 0.0}
    p_new = percentiles(new) if new else {"n": 0, "p50_ms": float("inf")}
    ratio = p_new["p50_ms"] / p_old["p50_ms"] if p_old["p50_ms"] else float("inf")
    out: dict[str, Any] = {
        "drop_in_via_app": {**p_new, "errors": new_errors},
        "baseline_old_route_direct": {**p_old, "errors": old_errors},
        "p50_ratio": round(ratio, 2),
        "target": "p50 <= 2x the old route answering directly, 0 errors; only 200 success:true counts",
        "meets_target": ratio <= 2.0 and new_errors == 0 and old_errors == 0,
    }
    if direct_s:
        out["for_reference_drop_in_on_the_admin_api"] = percentiles(direct_s)
    return out


def start_up_default_data(app: Path, tmp: Path, double_url: str) -> tuple[subprocess.Popen[Any], int]:
    """``linkpronto up --app`` from the app's folder with no data_dir setting at all; returns once the
    app's own route issued a ready link: (process, app port)."""
    shutil.rmtree(app / ".next", ignore_errors=True)
    public_port, admin_port, app_port = free_port(), free_port(), free_port()
    env = cli_env(tmp / "unused", double_url, public_port, admin_port,
                  LINKPRONTO_APP_COMMAND=f"npx next dev -p {app_port}", LINKPRONTO_APP_PORT=str(app_port),
                  LINKPRONTO_APP_LINK_PATH=LINK_PATH, NEXT_TELEMETRY_DISABLED="1",
                  XDG_DATA_HOME=str(tmp / "xdg-data"), XDG_CONFIG_HOME=str(tmp / "xdg-config"))
    env.pop("LINKPRONTO_SERVER_DATA_DIR")
    up = subprocess.Popen([sys.executable, "-m", "linkpronto", "up"], cwd=app, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 300:
        try:
            res = httpx.post(f"http://127.0.0.1:{app_port}/api/generate-consultation-token", json=BODY, timeout=90)
            if res.status_code == 200 and res.json().get("success") is True:
                return up, app_port
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    stop_tree(up)
    raise SystemExit("up (default data folder) never issued a ready link through the app")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3,
                        help="first-link rounds (baseline, then up, each round); 0 skips them")
    args = parser.parse_args()
    app = prepare_example()
    (app / "pages" / "api" / "old-generate-consultation-token.js").write_text(OLD_ROUTE)
    in_project = app / ".linkpronto"
    shutil.rmtree(in_project, ignore_errors=True)  # a bench copy of the example: nothing of the user's
    base_env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}
    out: dict[str, Any] = {"bench": "app", "requests": args.requests, "load_average_1m": os.getloadavg()[0]}
    with run_double({TEST_KEY: TEST_SECRET}) as double, tempfile.TemporaryDirectory() as tmp:
        alone: list[float] = []
        under: list[float] = []
        up: subprocess.Popen[Any] | None = None
        for n in range(max(1, args.rounds)):
            if up is not None:
                stop_tree(up)
            if args.rounds > 0:
                alone.append(app_alone(app, base_env))
            up, first, admin_port, app_port, token_file = start_up(app, Path(tmp) / f"data{n}", double.url)
            under.append(first)
        assert up is not None
        if args.rounds > 0:
            diffs = [u - a for u, a in zip(under, alone, strict=True)]
            diff = statistics.median(diffs)
            out["first_link"] = {
                "up_to_first_ready_link_s": [round(x, 3) for x in under],
                "baseline_app_alone_first_link_route_answer_s": [round(x, 3) for x in alone],
                "difference_s": [round(x, 3) for x in diffs],
                "median_difference_s": round(diff, 3),
                "target": "median difference <= 2 s",
                "meets_target": diff <= 2.0,
            }
        try:
            out["create_through_app"] = {
                "data_dir": "explicit, outside the project",
                **interleaved(f"http://127.0.0.1:{app_port}", args.requests, (admin_port, token_file)),
            }
        finally:
            stop_tree(up)
        try:
            up, app_port = start_up_default_data(app, Path(tmp), double.url)
            try:
                landed_in_project = in_project.exists()
                out["create_through_app_default_data_dir"] = {
                    "data_dir": "default (no server.data_dir; up run from the app's folder)",
                    "data_dir_in_project": landed_in_project,
                    **interleaved(f"http://127.0.0.1:{app_port}", args.requests, None),
                }
            finally:
                stop_tree(up)
        finally:
            shutil.rmtree(in_project, ignore_errors=True)
            (app / "pages" / "api" / "old-generate-consultation-token.js").unlink(missing_ok=True)
    out["meets_target"] = all(v.get("meets_target") for v in out.values() if isinstance(v, dict))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
