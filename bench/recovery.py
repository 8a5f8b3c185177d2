"""How fast LiveKit local mode recovers from a SIGKILL of livekit-server.

Runs the LiveKit test double (``tests/doubles/livekit_server.py``) as ``livekit-server`` under
:class:`linkpronto.livekit.local.LocalLivekit`, with the product's default restart policy. Each round
starts a fresh component (so every kill is "the first crash after a healthy start", the common case;
repeated crashes back off on purpose), waits until ready, SIGKILLs the server and measures:

* ``detection_s``: kill → the component's state leaves ``ready`` (listener callback; the supervisor
  waits on the process exit, it does not poll);
* ``back_to_ready_s``: kill → ``ready`` again (back-off + spawn + the double's start + readiness probe);
* ``double_start_to_ready_s``: the double's own start-to-ready time, measured in the same run by
  spawning it directly and polling ``GET /`` and ``/rtc/validate`` every 5 ms (the baseline).

Prints one JSON document. Targets: detection ≤ 0.5 s; back to ready ≤ the double's own start + 1 s.
POSIX only (the double is put on PATH as a shebang script).

    .venv/bin/python bench/recovery.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform as py_platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from linkpronto.config import defaults
from linkpronto.livekit.local import LocalLivekit
from linkpronto.livekit.tokens import probe_token
from linkpronto.schema import PartState
from linkpronto.supervise import RestartPolicy

ROOT = Path(__file__).resolve().parents[1]
DOUBLE = ROOT / "tests" / "doubles" / "livekit_server.py"
KEY = "APIbench"
SECRET = secrets.token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {
        "median": round(statistics.median(ordered), 4),
        "p90": round(p90, 4),
        "max": round(ordered[-1], 4),
        "min": round(ordered[0], 4),
    }


def double_start_to_ready(script: Path, work: Path) -> float:
    """Spawn the double directly (same launcher, same kind of config) and time it to ready."""
    port = free_port()
    config = work / f"baseline-{port}.yaml"
    config.write_text(f"port: {port}\nkeys:\n  {KEY}: {SECRET}\n", encoding="utf-8")
    token = probe_token(KEY, SECRET)
    started = time.perf_counter()
    proc = subprocess.Popen([str(script), "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            deadline = started + 30
            while time.perf_counter() < deadline:
                try:
                    if (client.get(f"http://127.0.0.1:{port}/").text == "OK" and client.get(
                            f"http://127.0.0.1:{port}/rtc/validate",
                            params={"access_token": token}).status_code == 200):
                        return time.perf_counter() - started
                except httpx.HTTPError:
                    pass
                time.sleep(0.005)
        raise RuntimeError("the double did not become ready within 30 s")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def one_round(work: Path) -> tuple[float, float]:
    settings = defaults(data_dir=work / "data", livekit={"port": free_port(), "node_ip": "127.0.0.1"},
                        tunnel={"provider": "cloudflared"})
    lk = LocalLivekit(settings, KEY, SECRET)
    await lk.start()
    try:
        if not await lk.wait_ready(30):
            raise RuntimeError(f"LiveKit double never became ready: {lk.status().detail}")
        proc = lk.process
        assert proc is not None and proc.pid is not None
        marks: dict[str, float] = {}

        def on_change(_status: object = None) -> None:
            now = time.perf_counter()
            if "killed" not in marks:
                return
            if proc.state is not PartState.READY:
                marks.setdefault("detected", now)
            elif "detected" in marks:
                marks.setdefault("ready", now)

        unsubscribe = proc.subscribe(on_change)
        marks["killed"] = time.perf_counter()
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.perf_counter() + 30
        while "ready" not in marks and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        unsubscribe()
        if "ready" not in marks:
            raise RuntimeError(f"not ready again within 30 s: {proc.reason}")
        return marks["detected"] - marks["killed"], marks["ready"] - marks["killed"]
    finally:
        await lk.stop()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if sys.platform == "win32":
        print(json.dumps({"error": "POSIX only (the double runs from a shebang script)"}))
        return 1
    with tempfile.TemporaryDirectory(prefix="linkpronto-bench-") as tmp:
        work = Path(tmp)
        bin_dir = work / "bin"
        bin_dir.mkdir()
        script = bin_dir / "livekit-server"
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u "{DOUBLE}" "$@"\n', encoding="utf-8")
        script.chmod(0o755)
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        detection: list[float] = []
        back: list[float] = []
        baseline: list[float] = []
        for _ in range(args.rounds):
            baseline.append(double_start_to_ready(script, work))
            d, r = await one_round(work)
            detection.append(d)
            back.append(r)
    base_median = statistics.median(baseline)
    back_median = statistics.median(back)
    policy = RestartPolicy()
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "platform": f"{py_platform.system()} {py_platform.machine()}, Python {py_platform.python_version()}, "
                    f"{os.cpu_count()} CPUs",
        "restart_backoff_initial_s": policy.backoff_initial_s,
        "detection_s": summary(detection),
        "back_to_ready_s": summary(back),
        "double_start_to_ready_s": summary(baseline),
        "back_to_ready_minus_double_start_s": round(back_median - base_median, 4),
        "back_to_ready_over_double_start_ratio": round(back_median / base_median, 3),
        "targets": {
            "detection_median_le_0_5_s": statistics.median(detection) <= 0.5,
            "detection_max_le_0_5_s": max(detection) <= 0.5,
            "back_to_ready_median_le_double_start_plus_1_s": back_median <= base_median + 1.0,
        },
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
