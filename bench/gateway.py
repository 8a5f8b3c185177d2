"""Gateway benchmark: prints one JSON document on stdout.

1. WebSocket echo round trip (a 64-byte binary frame, like a LiveKit signalling message) from a client
   process to a ``websockets`` echo server, directly and through ``RtcProxy`` (path ``/rtc``), each over
   one connection: p50/p90/p99/mean after a warm-up. Target: ≤ 0.5 ms added at p50.
2. HTTP throughput with ``wrk -t2 -c32 -d10s`` against the same upstream, directly, through
   ``AppProxy`` and through ``caddy reverse-proxy``. The upstream is ``caddy respond`` (Go, all cores,
   ~13-byte body), chosen because a Python upstream would be the bottleneck and hide the proxies'
   differences. Target: AppProxy ≥ 50 % of Caddy's requests per second.

The gateway runs the way linkpronto runs it: one uvicorn process, uvloop + httptools,
``websockets-sansio``, no access log. Every server is a child process on 127.0.0.1; all are stopped
at the end. Only the intended answer counts: a WebSocket answer that is not the frame sent back, an
HTTP status other than 200, or a socket error is an error, and any error makes ``meets_target`` false.
Usage: ``python bench/gateway.py [--duration 10] [--round-trips 2000] [--skip-http]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from _status import error_count, wrk_errors, wrk_script  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def child(argv: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            wait_port(port)
        except RuntimeError:
            proc.kill()
            err = proc.communicate(timeout=5)[1].decode(errors="replace")
            raise RuntimeError(f"{argv[:3]} did not start: {err[-2000:]}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


# --- roles run as child processes ---------------------------------------------------------------
def role_ws_echo(port: int) -> None:
    import uvloop
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", port, compression=None, ping_interval=None):
            await asyncio.Future()

    uvloop.run(main())


def role_gateway(port: int, kind: str, upstream: str) -> None:
    import uvicorn

    from linkpronto.gateway import AppProxy, RtcProxy

    app: Any = RtcProxy(lambda: upstream) if kind == "rtc" else AppProxy(lambda: upstream, lambda: None)
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", ws="websockets-sansio",
                lifespan="off", access_log=False, log_level="warning", server_header=False, date_header=False)


# --- measurements -------------------------------------------------------------------------------
async def ws_round_trips(url: str, warmup: int, count: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    payload = os.urandom(64)
    samples: list[float] = []
    wrong = 0  # an answer that is not our frame back is an error, however fast it came
    async with connect(url, compression=None, ping_interval=None, proxy=None) as ws:
        for i in range(warmup + count):
            t0 = time.perf_counter_ns()
            await ws.send(payload)
            answer = await ws.recv()
            if i >= warmup:
                samples.append((time.perf_counter_ns() - t0) / 1e6)
                wrong += answer != payload
    samples.sort()

    def pct(p: float) -> float:
        return round(samples[min(len(samples) - 1, int(p * len(samples)))], 4)

    return {"n": len(samples), "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(samples), 4), "errors": wrong}


def bench_ws(warmup: int, count: int) -> dict[str, Any]:
    import uvloop

    echo_port, gw_port = free_port(), free_port()
    py = sys.executable
    with child([py, str(HERE), "--role", "ws-echo", "--port", str(echo_port)], echo_port), \
         child([py, str(HERE), "--role", "gateway", "--kind", "rtc", "--port", str(gw_port),
                "--upstream", f"http://127.0.0.1:{echo_port}"], gw_port):
        direct = uvloop.run(ws_round_trips(f"ws://127.0.0.1:{echo_port}/rtc", warmup, count))
        proxied = uvloop.run(ws_round_trips(f"ws://127.0.0.1:{gw_port}/rtc", warmup, count))
        direct_again = uvloop.run(ws_round_trips(f"ws://127.0.0.1:{echo_port}/rtc", warmup, count))
    baseline = min(direct["p50_ms"], direct_again["p50_ms"])
    added = round(proxied["p50_ms"] - baseline, 4)
    errors = direct["errors"] + proxied["errors"] + direct_again["errors"]
    return {
        "payload_bytes": 64, "warmup": warmup,
        "direct": direct, "through_gateway": proxied, "direct_again": direct_again,
        "added_p50_ms": added,
        "added_p99_ms": round(proxied["p99_ms"] - min(direct["p99_ms"], direct_again["p99_ms"]), 4),
        "errors": errors, "target_added_p50_ms": 0.5, "meets_target": added <= 0.5 and errors == 0,
    }


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_LAT = re.compile(r"Latency\s+([\d.]+)(us|ms|s)")


def wrk(url: str, duration: int) -> dict[str, Any]:
    """Only 200 (the upstream's answer) is a success: a 502 from a proxy is an error, not a request/s."""
    script = wrk_script(200)
    try:
        argv = ["wrk", "-t2", "-c32", f"-d{duration}s", "-s", script, url]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    finally:
        os.unlink(script)
    rps = _RPS.search(out)
    lat = _LAT.search(out)
    errors = wrk_errors(out, 200)
    latency_ms = None
    if lat:
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[lat.group(2)]
        latency_ms = round(float(lat.group(1)) * scale, 3)
    return {"requests_per_s": float(rps.group(1)) if rps else 0.0, "latency_avg_ms": latency_ms,
            "errors": errors, "error_count": error_count(errors)}


def bench_http(duration: int) -> dict[str, Any]:
    caddy = shutil.which("caddy")
    if caddy is None or shutil.which("wrk") is None:
        return {"skipped": "needs caddy and wrk", "meets_target": False}  # not measured is not met
    up_port, gw_port, caddy_port = free_port(), free_port(), free_port()
    py = sys.executable
    env_note = "caddy respond (Go) answering 200 'hello, world' (13 bytes)"
    with child([caddy, "respond", "--listen", f"127.0.0.1:{up_port}", "--body", "hello, world\n"], up_port), \
         child([py, str(HERE), "--role", "gateway", "--kind", "app", "--port", str(gw_port),
                "--upstream", f"http://127.0.0.1:{up_port}"], gw_port), \
         child([caddy, "reverse-proxy", "--from", f":{caddy_port}", "--to", f"127.0.0.1:{up_port}"],
               caddy_port):
        for port in (up_port, gw_port, caddy_port):  # warm every path (connection pools, JIT-less caches)
            subprocess.run(["wrk", "-t1", "-c8", "-d1s", f"http://127.0.0.1:{port}/"], capture_output=True,
                           timeout=30, check=True)
        direct = wrk(f"http://127.0.0.1:{up_port}/", duration)
        gateway = wrk(f"http://127.0.0.1:{gw_port}/", duration)
        caddy_rp = wrk(f"http://127.0.0.1:{caddy_port}/", duration)
    errors = {"direct": direct["error_count"], "through_gateway": gateway["error_count"],
              "through_caddy": caddy_rp["error_count"]}
    ratio_caddy = round(gateway["requests_per_s"] / caddy_rp["requests_per_s"], 3) if caddy_rp["requests_per_s"] else None
    ratio_direct = round(gateway["requests_per_s"] / direct["requests_per_s"], 3) if direct["requests_per_s"] else None
    return {
        "tool": f"wrk -t2 -c32 -d{duration}s", "upstream": env_note,
        "direct": direct, "through_gateway": gateway, "through_caddy": caddy_rp,
        "gateway_vs_caddy": ratio_caddy, "gateway_vs_direct": ratio_direct,
        "errors": errors,
        "target_gateway_vs_caddy": 0.5,
        "meets_target": bool(ratio_caddy and ratio_caddy >= 0.5) and sum(errors.values()) == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--role", choices=["ws-echo", "gateway"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--kind", choices=["rtc", "app"], default="app")
    parser.add_argument("--upstream", default="")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if args.role == "ws-echo":
        role_ws_echo(args.port)
        return 0
    if args.role == "gateway":
        role_gateway(args.port, args.kind, args.upstream)
        return 0
    result: dict[str, Any] = {
        "benchmark": "gateway",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "websocket_echo": bench_ws(args.warmup, args.round_trips),
    }
    if not args.skip_http:
        result["http_throughput"] = bench_http(args.duration)
    result["meets_target"] = all(part["meets_target"] for key, part in result.items()
                                 if key in ("websocket_echo", "http_throughput"))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
