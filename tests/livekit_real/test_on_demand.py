"""On-demand on the real livekit-server in local mode: ``linkpronto up`` with ``stack.mode = on-demand``
and a short ``idle_timeout`` (inside a namespace of ours, 198.18.155.0/24; the admin API on the
namespace's address so the test reaches it).

- A link request starts the stack; a real patient (libwebrtc, joined through linkpronto's public
  listener) holds the call for several idle periods: the stack is never stopped meanwhile (the idle
  stop counts participants with the real server's ListRooms);
- once the patient leaves, the stack stops by itself;
- a probe participant (a real libwebrtc peer in a ``linkpronto-probe-…`` room, like the media rung's and
  the patient page's media check) never counts: the stack stops while it is still connected.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from helpers.lp import cli_env
from helpers.net import free_port

pytestmark = pytest.mark.real_livekit
LP_IP = "198.18.155.2"
PEER = Path(__file__).with_name("rtc_peer.py")
IDLE_S = 3.0
HOLD_S = 14.0  # the patient's call: more than four idle periods


def _peer(host: Any, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(host.argv([sys.executable, str(PEER), *args]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_connected(proc: subprocess.Popen[str], timeout: float = 40) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith('{"event": "connected"'):
            return
        if line.startswith('{"connected": false'):
            raise AssertionError(line)
    raise AssertionError(f"peer never connected: {proc.stderr.read() if proc.stderr else ''}"[-3000:])


def test_on_demand_never_stops_under_a_real_participant_and_probes_never_count(
        tmp_path: Path, topology: object, real_livekit_binary: Path) -> None:
    from livekit.api import AccessToken, VideoGrants

    from fixtures.netns import Topology

    assert isinstance(topology, Topology)
    lan = topology.network("lan", "198.18.155.0/24")
    host = topology.host("lp")
    topology.attach(host, lan, LP_IP, default=True)
    topology.link_root(lan, "198.18.155.254")
    public_port, admin_port = free_port(), free_port()
    data = tmp_path / "d"
    env = cli_env(data, "", public_port, admin_port,
                  LINKPRONTO_LIVEKIT_MODE="local", LINKPRONTO_LIVEKIT_BINARY=str(real_livekit_binary),
                  LINKPRONTO_LIVEKIT_NODE_IP=LP_IP, LINKPRONTO_LIVEKIT_STUN_SERVERS=f"{LP_IP}:3478",
                  LINKPRONTO_LIVEKIT_PORT=str(free_port()), LINKPRONTO_LIVEKIT_TCP_PORT=str(free_port()),
                  LINKPRONTO_LIVEKIT_UDP_PORT=str(free_port()), LINKPRONTO_SERVER_ADMIN_BIND=LP_IP,
                  LINKPRONTO_STACK_MODE="on-demand", LINKPRONTO_STACK_IDLE_TIMEOUT=str(IDLE_S))
    for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        env.pop(k, None)
    log: IO[bytes] = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(host.argv([sys.executable, "-m", "linkpronto", "up", "--no-install"]), env=env,
                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    peers: list[subprocess.Popen[str]] = []
    admin: httpx.Client | None = None
    try:
        token_file = data / "admin-token"
        deadline = time.monotonic() + 60
        while not token_file.is_file():
            assert time.monotonic() < deadline and up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(0.5)
        admin = httpx.Client(base_url=f"http://{LP_IP}:{admin_port}", timeout=30,
                             headers={"Authorization": "Bearer " + token_file.read_text("ascii").strip()})

        def state() -> str:
            while True:
                try:
                    return str(admin.get("/api/status").json()["state"])  # type: ignore[union-attr]
                except httpx.TransportError:
                    assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
                    time.sleep(0.2)

        def wait_state(want: str, timeout: float) -> float:
            t0 = time.monotonic()
            seen = []
            while time.monotonic() - t0 < timeout:
                seen.append(state())
                if seen[-1] == want:
                    return time.monotonic() - t0
                time.sleep(0.2)
            raise AssertionError(f"not {want} in {timeout} s: {seen[-5:]}\n"
                                 + (tmp_path / "up.log").read_text(errors="replace")[-3000:])

        def new_link() -> str:
            res = admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 60})  # type: ignore[union-attr]
            assert res.status_code in (201, 202), res.text
            wait_state("ready", 120)
            return str(res.json()["url"]).rsplit("/", 1)[1]

        wait_state("stopped", 60)  # on-demand: nothing runs before someone asks for a link
        token = new_link()

        # 1. A real patient in the room for several idle periods: never stopped meanwhile.
        patient = _peer(host, "--join", f"http://127.0.0.1:{public_port}", token, "--seconds", str(HOLD_S),
                        "--publish")
        peers.append(patient)
        _wait_connected(patient)
        t0 = time.monotonic()
        states = set()
        while patient.poll() is None and time.monotonic() - t0 < HOLD_S + 30:
            states.add(state())
            time.sleep(0.3)
        held = time.monotonic() - t0
        out, err = patient.communicate(timeout=30)
        result = json.loads([ln for ln in out.splitlines() if ln.startswith('{"connected"')][-1])
        assert result["connected"], err[-3000:]
        assert held >= HOLD_S - 1 and states == {"ready"}, (held, states)
        # 2. Nobody left: the stack stops by itself.
        wait_state("stopped", IDLE_S * 3 + 30)

        # 3. A probe participant never counts: the stack stops while it is still in its probe room.
        new_link()
        config = json.loads((data / "livekit.yaml").read_text())
        (key, secret), = config["keys"].items()
        probe_token = (AccessToken(key, secret).with_identity("lp-probe-od")
                       .with_grants(VideoGrants(room_join=True, room="linkpronto-probe-od")).to_jwt())
        probe = _peer(host, "--url", f"ws://127.0.0.1:{config['port']}", "--token", probe_token,
                      "--seconds", "120", "--publish")
        peers.append(probe)
        _wait_connected(probe)
        took = wait_state("stopped", IDLE_S * 3 + 30)
        assert probe.poll() is None or time.monotonic() - t0 < 120, "the probe left before the stop"
        assert took < 120
    finally:
        for p in peers:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        if admin is not None:
            admin.close()
        subprocess.run(host.argv([sys.executable, "-m", "linkpronto", "down"]), env=env, capture_output=True,
                       timeout=60)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait(10)
        log.close()
