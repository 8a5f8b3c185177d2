"""Benchmark: issuing and joining links with one instance and with two behind Caddy, in one run.

Starts a real PostgreSQL, a real Redis, the LiveKit test double and ``linkpronto serve`` processes
(:mod:`fixtures.cluster`), then measures with ``wrk`` (a C client; a Lua script counts only the
intended status as success — 201 for a create, 200 for a join — and reports any other status):

- ``sqlite_1``: one instance, SQLite, in-memory limiter, direct to its listeners;
- ``postgres_1``: one instance, PostgreSQL, in-memory limiter, direct (the target's baseline);
- ``postgres_redis_1_caddy``: one instance, PostgreSQL + Redis, behind Caddy (the same path as the
  two-instance case, so the proxy's own cost is visible);
- ``postgres_redis_2_caddy``: two instances, PostgreSQL + Redis, behind Caddy round-robin.

Creates go to each instance's admin API (never behind Caddy: it is not public), with the
verification fresh; with two instances one wrk per instance runs at the same time and the figures
are summed. Joins go to the public address (Caddy when there is one) on a link without a use limit.

Target: joins with two instances ≥ 1.6 × one instance on PostgreSQL. This machine has 2 cores shared
by wrk, Caddy, PostgreSQL and the instances, so the figure measures contention as much as scaling.
Usage: python bench/scale.py [--seconds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from doubles.livekit_server import run_double  # noqa: E402
from fixtures.cluster import Cluster, Instance  # noqa: E402
from fixtures.pgserver import PgServer  # noqa: E402
from fixtures.redisserver import RedisServer  # noqa: E402
from helpers.lp import TEST_KEY, TEST_SECRET  # noqa: E402
from scale import routes  # noqa: E402

TARGET_JOIN_SCALING = 1.6

LUA = """
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"
%(headers)s
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0 end
function response(status, headers, body)
  if status == %(expect)d then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("other") end
  io.write(string.format("RESULT {\\"ok\\": %%d, \\"other\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, " ..
    "\\"duration_us\\": %%d, \\"errors\\": %%d}\\n", o, b, latency:percentile(50), latency:percentile(99),
    summary.duration, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk(url: str, body: dict[str, Any], expect: int, headers: dict[str, str], seconds: int, conns: int) -> dict[str, Any]:
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is required (Debian: apt-get install wrk)")
    hdrs = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(LUA % {"body": json.dumps(json.dumps(body)), "headers": hdrs, "expect": expect})
        script = fh.name
    try:
        out = subprocess.run(
            [exe, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", script, url],
            capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script)
    m = re.search(r"RESULT (\{.*\})", out)
    if m is None:
        raise SystemExit("wrk output not understood:\n" + out)
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    return {
        "ok_per_s": round(r["ok"] / secs, 1),
        "ok": r["ok"],
        "other_status": r["other"],
        "socket_errors": r["errors"],
        "p50_ms": round(r["p50_us"] / 1000, 2),
        "p99_ms": round(r["p99_us"] / 1000, 2),
    }


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Two wrk runs at the same time (one per instance): rates and counts add, latency is the worst."""
    return {
        "ok_per_s": round(sum(p["ok_per_s"] for p in parts), 1),
        "ok": sum(p["ok"] for p in parts),
        "other_status": sum(p["other_status"] for p in parts),
        "socket_errors": sum(p["socket_errors"] for p in parts),
        "p50_ms": max(p["p50_ms"] for p in parts),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "per_instance": parts,
    }


def measure(cluster: Cluster, seconds: int, conns: int) -> dict[str, Any]:
    cluster.wait_state("ready", 60)
    auth = cluster.auth
    create_body = {"professional_id": "bench", "wait_s": 0}
    insts = cluster.instances
    # Creates: each instance's own admin API, all at once; the connections are split between them.
    per = max(1, conns // len(insts))

    def create_on(inst: Instance) -> dict[str, Any]:
        return wrk(inst.admin_url + "/api/consultation-links", create_body, 201, auth, seconds, per)

    with concurrent.futures.ThreadPoolExecutor(len(insts)) as pool:
        creates = list(pool.map(create_on, insts))
    res = httpx.post(insts[0].admin_url + "/api/consultation-links", json={"professional_id": "bench"},
                     headers=auth, timeout=30)
    if res.status_code != 201:
        raise SystemExit(f"create answered {res.status_code}: {res.text[:300]}")
    token = res.json()["url"].rsplit("/", 1)[1]
    join = wrk(cluster.url + routes.JOIN, {"token": token}, 200, {}, seconds, conns)
    return {"create": combine(creates) if len(creates) > 1 else creates[0], "join": join}


def webhook_to_dashboard_latency(args: argparse.Namespace) -> dict[str, Any] | None:
    """LiveKit webhook → dashboard (SSE) latency, p50/p99 over 60 events (bench/events.py).

    ``main`` puts it under ``"webhook_to_dashboard"`` in the JSON document.
    """
    import asyncio

    from events import webhook_to_dashboard  # bench/events.py (this directory is on sys.path)

    doc = asyncio.run(webhook_to_dashboard(events=60, ws_joins=20))
    return {**doc["webhook_to_sse"], "meets_target": doc["meets_target"], "detail": doc}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # Windows
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    out: dict[str, Any] = {
        "benchmark": "scale",
        "cpus": os.cpu_count(),
        "seconds_per_measurement": args.seconds,
        "connections": args.connections,
        "client": "wrk -t1 (create: one wrk per instance, connections split)",
        # Other work on the machine skews every figure: the load is reported with them.
        "load_average_at_start": _loadavg(),
    }
    base_env = {
        # The benchmark's client is one address: the failed-join limit must not be what is measured.
        "LINKPRONTO_SERVER_JOIN_FAILURES_PER_MINUTE": "1000000",
    }
    configs = [
        ("sqlite_1", 1, False, False, False),
        ("postgres_1", 1, True, False, False),
        ("postgres_redis_1_caddy", 1, True, True, True),
        ("postgres_redis_2_caddy", 2, True, True, True),
    ]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lp-bench-scale-") as tmp, PgServer() as pg, RedisServer() as redis, \
            run_double({TEST_KEY: TEST_SECRET}) as lk:
        results: dict[str, Any] = {}
        for name, n, use_pg, use_redis, caddy in configs:
            work = Path(tmp) / name
            work.mkdir()
            db = pg.create_database(name) if use_pg else ""
            redis.flush()
            cluster = Cluster(
                n, database_url=db, redis_url=redis.url if use_redis else "memory://", livekit_url=lk.url,
                workdir=work, caddy=caddy, env=dict(base_env),
            )
            with cluster:
                results[name] = measure(cluster, args.seconds, args.connections)
                results[name]["instances"] = n
                results[name]["store"] = "postgresql" if use_pg else "sqlite"
                results[name]["limiter"] = "redis" if use_redis else "memory"
                results[name]["behind_caddy"] = caddy
        out["results"] = results
    one = results["postgres_1"]["join"]["ok_per_s"]
    two = results["postgres_redis_2_caddy"]["join"]["ok_per_s"]
    one_caddy = results["postgres_redis_1_caddy"]["join"]["ok_per_s"]
    out["join_scaling_vs_postgres_1"] = round(two / one, 2) if one else None
    out["join_scaling_vs_postgres_redis_1_caddy"] = round(two / one_caddy, 2) if one_caddy else None
    c1 = results["postgres_1"]["create"]["ok_per_s"]
    c2 = results["postgres_redis_2_caddy"]["create"]["ok_per_s"]
    out["create_scaling_vs_postgres_1"] = round(c2 / c1, 2) if c1 else None
    out["target"] = f"joins with 2 instances >= {TARGET_JOIN_SCALING} x 1 instance on PostgreSQL"
    out["meets_target"] = bool(one and two / one >= TARGET_JOIN_SCALING)
    out["only_intended_status_counted"] = True
    webhook = webhook_to_dashboard_latency(args)
    if webhook is not None:
        out["webhook_to_dashboard"] = webhook
    out["load_average_at_end"] = _loadavg()
    out["elapsed_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
