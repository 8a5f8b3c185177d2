"""Local mode on the real livekit-server: ``linkpronto up`` (a child, inside a namespace of ours)
renders its own config, generates its keys, starts the real v1.13.5 binary (``livekit.binary``) with
``node_ip``/``stun_servers`` on the namespace's address, and the ladder reaches ``ready``; a link it
issues joins the real server through linkpronto's public listener (``/rtc`` and ``/rtc/v1``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from helpers.lp import cli_env
from helpers.net import free_port
from livekit_conformance.harness import join_request_param

pytestmark = pytest.mark.real_livekit
LP_IP = "198.18.152.2"


def test_local_mode_up_reaches_ready_and_a_link_joins_the_real_server(
        tmp_path: Path, topology: object, real_livekit_binary: Path) -> None:
    import subprocess

    from fixtures.netns import Topology

    assert isinstance(topology, Topology)
    lan = topology.network("lan", "198.18.152.0/24")
    host = topology.host("lp")
    topology.attach(host, lan, LP_IP, default=True)
    public_port, admin_port = free_port(), free_port()
    env = cli_env(tmp_path / "d", "", public_port, admin_port,
                  LINKPRONTO_LIVEKIT_MODE="local", LINKPRONTO_LIVEKIT_BINARY=str(real_livekit_binary),
                  LINKPRONTO_LIVEKIT_NODE_IP=LP_IP, LINKPRONTO_LIVEKIT_STUN_SERVERS=f"{LP_IP}:3478",
                  LINKPRONTO_LIVEKIT_PORT=str(free_port()), LINKPRONTO_LIVEKIT_TCP_PORT=str(free_port()),
                  LINKPRONTO_LIVEKIT_UDP_PORT=str(free_port()))
    for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        env.pop(k, None)
    py = [sys.executable, "-m", "linkpronto"]
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(host.argv([*py, "up", "--no-install"]), env=env, stdout=log, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        st = subprocess.run(host.argv([*py, "status", "--json", "--wait-ready", "90"]), env=env,
                            capture_output=True, text=True, timeout=120)
        doc = json.loads(st.stdout) if st.stdout.strip().startswith("{") else {}
        assert doc.get("state") == "ready", (st.stdout[-3000:], st.stderr[-2000:],
                                             (tmp_path / "up.log").read_text(errors="replace")[-3000:])
        assert doc["components"]["livekit"]["state"] == "ready"
        made = subprocess.run(host.argv([*py, "link", "create", "--professional", "dra-ana", "--json"]),
                              env=env, capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stdout + made.stderr
        link = json.loads(made.stdout)
        token = link["url"].rsplit("/", 1)[1]
        # The patient's side, inside the same namespace (the public listener is its loopback).
        probe = tmp_path / "join.py"
        probe.write_text(JOIN_SCRIPT)
        out = subprocess.run(host.argv([sys.executable, str(probe), str(public_port), token, join_request_param()]),
                             capture_output=True, text=True, timeout=60, cwd=str(Path(__file__).parents[1]))
        assert out.returncode == 0, out.stdout + out.stderr
        rooms = json.loads(out.stdout.strip().splitlines()[-1])
        assert rooms == [link["room"], link["room"]]
    finally:
        subprocess.run(host.argv([*py, "down"]), env=env, capture_output=True, timeout=60)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
        log.close()


JOIN_SCRIPT = r'''
import asyncio, json, sys
import httpx, websockets
from livekit.protocol import rtc
port, token, jr = sys.argv[1], sys.argv[2], sys.argv[3]
async def main():
    grant = httpx.post(f"http://127.0.0.1:{port}/_linkpronto/api/join", json={"token": token}, timeout=20).json()
    base = f"ws://127.0.0.1:{port}/_linkpronto/livekit"
    names = []
    for url in (f"{base}/rtc/v1?access_token={grant['access_token']}&join_request={jr}",
                f"{base}/rtc?access_token={grant['access_token']}"):
        async with websockets.connect(url) as ws:
            while True:
                res = rtc.SignalResponse.FromString(await asyncio.wait_for(ws.recv(), 10))
                if res.WhichOneof("message") == "join":
                    names.append(res.join.room.name)
                    break
    print(json.dumps(names))
asyncio.run(main())
'''
