"""LiveKit's own multi-node mode: two real livekit-server v1.13.5 nodes sharing one Redis (each node
and Redis in a namespace of ours, 198.18.153.0/24). A professional signalling through node A and a
patient through node B meet in one room and the patient decodes the professional's video.

Not here (not done): two ``linkpronto serve`` instances on one PostgreSQL behind Caddy in front of
these nodes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers.lp import TEST_KEY, TEST_SECRET
from helpers.net import free_port
from helpers.tiers import require

pytestmark = pytest.mark.real_livekit
PEER = Path(__file__).with_name("rtc_peer.py")
REDIS_IP, NODE_A, NODE_B, PRO_IP, PAT_IP = (f"198.18.153.{n}" for n in (5, 2, 3, 11, 12))


def test_two_nodes_one_redis_participants_on_different_nodes_meet(
        tmp_path: Path, topology: object, real_livekit_binary: Path) -> None:
    from livekit.api import AccessToken, VideoGrants

    from fixtures.livekit_real import RealLivekit, base_config
    from fixtures.netns import Topology

    redis_server = shutil.which("redis-server")
    require(redis_server is not None, "redis-server")
    assert isinstance(topology, Topology) and redis_server is not None
    lan = topology.network("lan", "198.18.153.0/24")
    hosts = {}
    for name, ip in (("redis", REDIS_IP), ("lka", NODE_A), ("lkb", NODE_B), ("pro", PRO_IP), ("pat", PAT_IP)):
        hosts[name] = topology.host(name)
        topology.attach(hosts[name], lan, ip, default=True)
    topology.link_root(lan, "198.18.153.254")  # the test process reaches the nodes' health checks
    port = free_port()
    redis = subprocess.Popen(hosts["redis"].argv([redis_server, "--port", str(port), "--bind", REDIS_IP,
                                                  "--save", "", "--appendonly", "no", "--protected-mode", "no", "--dir", str(tmp_path)]),
                             stdout=(tmp_path / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    nodes: list[RealLivekit] = []
    try:
        cli = shutil.which("redis-cli") or "redis-cli"
        deadline = time.monotonic() + 15
        while hosts["redis"].run([cli, "-h", REDIS_IP, "-p", str(port), "ping"]).stdout.strip() != "PONG":
            assert time.monotonic() < deadline and redis.poll() is None, (tmp_path / "redis.log").read_text()[-2000:]
            time.sleep(0.1)
        for name, ip in (("lka", NODE_A), ("lkb", NODE_B)):
            config = base_config(ip, free_port(), free_port(), free_port(), {TEST_KEY: TEST_SECRET})
            config["redis"] = {"address": f"{REDIS_IP}:{port}"}
            (tmp_path / name).mkdir()
            lk = RealLivekit({TEST_KEY: TEST_SECRET}, host=hosts[name], ip=ip, config=config,
                             workdir=tmp_path / name)
            nodes.append(lk.start(timeout_s=40))
        for lk in nodes:
            log = lk.log_tail(400)
            assert "connecting to redis" in log and "single-node routing" not in log, log[-2000:]
        room = f"mn-{uuid.uuid4().hex[:6]}"

        def token(identity: str) -> str:
            return (AccessToken(TEST_KEY, TEST_SECRET).with_identity(identity)
                    .with_grants(VideoGrants(room_join=True, room=room)).to_jwt())

        pro = subprocess.Popen(hosts["pro"].argv([sys.executable, str(PEER), "--url", nodes[0].ws_url,
                                                  "--token", token("pro"), "--seconds", "9", "--publish"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # the room starts on node A's side first
        pat = subprocess.Popen(hosts["pat"].argv([sys.executable, str(PEER), "--url", nodes[1].ws_url,
                                                  "--token", token("pat"), "--seconds", "6"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got = {}
        for name, proc in (("pat", pat), ("pro", pro)):
            out, err = proc.communicate(timeout=60)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            assert lines, f"{name} printed nothing:\n{err[-3000:]}"
            got[name] = json.loads(lines[-1])
        assert got["pat"]["connected"] and got["pro"]["connected"], got
        assert "pro" in got["pat"]["remote"], got
        assert got["pat"]["frames"] > 0, (got, nodes[0].log_tail(20), nodes[1].log_tail(20))
        # LiveKit's routing: the room lives on one node (its allocator picks it); both RTC sessions run
        # there, so the participant who signalled through the other node was relayed through Redis.
        sessions = [{who for who in ("pat", "pro") for line in lk.log_tail(3000).splitlines()
                     if "starting RTC session" in line and f'"participant": "{who}"' in line} for lk in nodes]
        assert sorted(map(sorted, sessions)) == [[], ["pat", "pro"]], sessions
    finally:
        for lk in nodes:
            lk.stop()
        redis.kill()
        redis.wait(10)
