"""Time from ``SshTunnel.open()`` to a public URL that serves our probe, against a local sshd.

Starts a real ``sshd`` on 127.0.0.1 (``tests/fixtures/sshd.py``) and a tiny HTTP server standing in
for the public listener. Each round measures, in alternating order:

* ``linkpronto_s``: ``await SshTunnel(...).open()`` (argv built, ssh spawned under the supervisor,
  readiness from ssh's own log) and then ``GET <url>/.well-known/linkpronto/probe`` until it answers
  the probe body (polled every 5 ms; normally the first GET already does);
* ``bare_ssh_s``: the same ssh argv spawned directly with ``subprocess.Popen``, then the forwarded
  port polled every 5 ms until the probe answers (the baseline: what ssh itself costs).

Both use a fixed remote port chosen per round so the bare run knows where to poll. Prints one JSON
document with the medians; target: ``overhead_median_s`` (linkpronto − bare) ≤ 0.2 s. POSIX only
(needs /usr/sbin/sshd).

    .venv/bin/python bench/tunnel.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.origin import Origin
from fixtures.sshd import SshServer, free_port, sshd_available
from linkpronto.supervise.spec import RestartPolicy
from linkpronto.tunnels.ssh import SshTunnel

BODY = b'{"instance":"bench","nonce":"1","mac":"x"}'
PROBE_PATH = "/.well-known/linkpronto/probe?nonce=1"
POLL_S = 0.005
TARGET_OVERHEAD_S = 0.2


async def until_serves(client: httpx.AsyncClient, url: str, deadline_s: float = 15.0) -> None:
    deadline = time.perf_counter() + deadline_s
    while True:
        try:
            response = await client.get(url + PROBE_PATH)
            if response.status_code == 200 and response.content == BODY:
                return
        except httpx.HTTPError:
            pass
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{url} did not serve the probe within {deadline_s} s")
        await asyncio.sleep(POLL_S)


def make_tunnel(server: SshServer, origin: Origin, remote_port: int) -> SshTunnel:
    return SshTunnel(
        origin.port,
        server.target,
        identity=str(server.identity),
        remote_port=remote_port,
        options=server.client_options(),
        restart=RestartPolicy(),
        open_timeout_s=15.0,
    )


async def run_ours(server: SshServer, origin: Origin, client: httpx.AsyncClient) -> float:
    tunnel = make_tunnel(server, origin, free_port())
    started = time.perf_counter()
    try:
        url = await tunnel.open()
        await until_serves(client, url)
        return time.perf_counter() - started
    finally:
        await tunnel.close()


async def run_bare(server: SshServer, origin: Origin, client: httpx.AsyncClient) -> float:
    remote = free_port()
    argv = make_tunnel(server, origin, remote).argv("ssh")
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await until_serves(client, f"http://127.0.0.1:{remote}")
        return time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_s": round(statistics.median(ordered), 4),
        "min_s": round(ordered[0], 4),
        "max_s": round(ordered[-1], 4),
        "p90_s": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 4),
    }


async def main(rounds: int) -> dict[str, Any]:
    if not sshd_available():
        raise SystemExit("needs /usr/sbin/sshd and the ssh client")
    origin = Origin(BODY, "application/json")
    ours: list[float] = []
    bare: list[float] = []
    with SshServer() as server:
        async with httpx.AsyncClient(trust_env=False, timeout=1.0) as client:
            await run_ours(server, origin, client)  # warm-up (imports, first sshd re-exec)
            await run_bare(server, origin, client)
            for i in range(rounds):
                if i % 2 == 0:
                    ours.append(await run_ours(server, origin, client))
                    bare.append(await run_bare(server, origin, client))
                else:
                    bare.append(await run_bare(server, origin, client))
                    ours.append(await run_ours(server, origin, client))
    origin.close()
    overhead = statistics.median(ours) - statistics.median(bare)
    return {
        "benchmark": "tunnel.ssh.open_to_serving",
        "rounds": rounds,
        "platform": platform.platform(),
        "linkpronto": summary(ours),
        "bare_ssh": summary(bare),
        "overhead_median_s": round(overhead, 4),
        "target_overhead_s": TARGET_OVERHEAD_S,
        "ok": overhead <= TARGET_OVERHEAD_S,
        "samples": {"linkpronto_s": [round(v, 4) for v in ours], "bare_ssh_s": [round(v, 4) for v in bare]},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(max(1, args.rounds))), indent=2))
