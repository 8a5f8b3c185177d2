"""LiveKit's own multi-node mode: two real livekit-server v1.13.5 nodes sharing one Redis (each node
and Redis in a namespace of ours).

1. ``test_two_nodes_one_redis_participants_on_different_nodes_meet`` (198.18.153.0/24): a professional
   signalling through node A and a patient through node B (libwebrtc peers) meet in one room and the
   patient decodes the professional's video.
2. ``test_whole_story_two_serves_on_one_postgres_behind_caddy_two_nodes`` (198.18.154.0/24): the
   scale-out deployment whole — two ``linkpronto serve`` instances sharing one PostgreSQL (and Redis
   for their rate limits), each pinned to its own LiveKit node (serve A → node A, serve B → node B),
   behind one Caddy with sticky sessions (``lb_policy cookie``). The patient (Chromium, 390×844, fake
   camera and microphone) opens linkpronto's patient page through Caddy and is pinned to serve A; the
   professional (Chromium) joins with the host token through Caddy, pinned to serve B. Both decode the
   other's video (``framesDecoded > 0``) and receive audio. Proof they signalled through different
   nodes: each node's own log says "new client WS connected" for exactly one of them (with the room's
   node as ``selectedNodeID``); both RTC sessions run on the room's node.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.lp import TEST_KEY, TEST_SECRET
from helpers.net import free_port
from helpers.tiers import require

pytestmark = pytest.mark.real_livekit
PEER = Path(__file__).with_name("rtc_peer.py")
BUNDLE = "/_linkpronto/static/vendor/livekit-client.umd.js"


@contextlib.contextmanager
def two_nodes(topology: Any, tmp_path: Path, net: str, *, extra_hosts: tuple[str, ...] = (),
              log_level: str = "info") -> Iterator[dict[str, Any]]:
    """Redis (``.5``) and two real LiveKit nodes (``.2``, ``.3``) sharing it, on ``net`` (a /24 prefix
    like ``198.18.153``); ``extra_hosts`` get ``.11``, ``.12``...; the root side is ``.254``."""
    from fixtures.livekit_real import RealLivekit, base_config

    redis_server = shutil.which("redis-server")
    require(redis_server is not None, "redis-server")
    assert redis_server is not None
    lan = topology.network("lan", f"{net}.0/24")
    ips = {"redis": f"{net}.5", "lka": f"{net}.2", "lkb": f"{net}.3"}
    ips.update({name: f"{net}.{11 + i}" for i, name in enumerate(extra_hosts)})
    hosts = {}
    for name, ip in ips.items():
        hosts[name] = topology.host(name)
        topology.attach(hosts[name], lan, ip, default=True)
    topology.link_root(lan, f"{net}.254")  # the test process (and what runs in the root namespace)
    port = free_port()
    redis = subprocess.Popen(hosts["redis"].argv([redis_server, "--port", str(port), "--bind", ips["redis"],
                                                  "--save", "", "--appendonly", "no", "--protected-mode", "no",
                                                  "--dir", str(tmp_path)]),
                             stdout=(tmp_path / "redis.log").open("wb"), stderr=subprocess.STDOUT)
    nodes: list[RealLivekit] = []
    try:
        cli = shutil.which("redis-cli") or "redis-cli"
        deadline = time.monotonic() + 15
        while hosts["redis"].run([cli, "-h", ips["redis"], "-p", str(port), "ping"]).stdout.strip() != "PONG":
            assert time.monotonic() < deadline and redis.poll() is None, (tmp_path / "redis.log").read_text()[-2000:]
            time.sleep(0.1)
        for name in ("lka", "lkb"):
            config = base_config(ips[name], free_port(), free_port(), free_port(), {TEST_KEY: TEST_SECRET})
            config["redis"] = {"address": f"{ips['redis']}:{port}"}
            config["logging"] = {"level": log_level}
            (tmp_path / name).mkdir()
            lk = RealLivekit({TEST_KEY: TEST_SECRET}, host=hosts[name], ip=ips[name], config=config,
                             workdir=tmp_path / name)
            nodes.append(lk.start(timeout_s=40))
        for lk in nodes:
            log = lk.log_tail(400)
            assert "connecting to redis" in log and "single-node routing" not in log, log[-2000:]
        yield {"nodes": nodes, "hosts": hosts, "ips": ips, "redis": f"{ips['redis']}:{port}"}
    finally:
        for lk in nodes:
            lk.stop()
        redis.kill()
        redis.wait(10)


def rtc_sessions(lk: Any, who: tuple[str, ...]) -> set[str]:
    """Identities among ``who`` whose RTC session (the media side) runs on node ``lk``."""
    return {w for w in who for line in lk.log_tail(5000).splitlines()
            if "starting RTC session" in line and f'"participant": "{w}"' in line}


def test_two_nodes_one_redis_participants_on_different_nodes_meet(
        tmp_path: Path, topology: object, real_livekit_binary: Path) -> None:
    from livekit.api import AccessToken, VideoGrants

    with two_nodes(topology, tmp_path, "198.18.153", extra_hosts=("pro", "pat")) as world:
        nodes, hosts = world["nodes"], world["hosts"]
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
        sessions = [rtc_sessions(lk, ("pat", "pro")) for lk in nodes]
        assert sorted(map(sorted, sessions)) == [[], ["pat", "pro"]], sessions


# -- the whole story: serve ×2 + PostgreSQL + Caddy + LiveKit ×2 + Redis + two browsers ----------------

#: The professional's page: the vendored livekit-client from linkpronto's public listener (through
#: Caddy), the host token, camera and microphone published, the remote video in #remote.
HOST_JOIN = """
async ({ url, token, bundle }) => {
  await new Promise((ok, ko) => {
    const s = document.createElement("script");
    s.src = bundle; s.onload = ok; s.onerror = () => ko(new Error("bundle"));
    document.head.append(s);
  });
  const LK = window.LivekitClient;
  const r = (window.__room = new LK.Room());
  r.on(LK.RoomEvent.TrackSubscribed, (track) => {
    const el = track.attach();
    if (track.kind === "video") {
      el.id = "remote"; el.muted = true; el.playsInline = true;
      document.getElementById("remote")?.remove();
    } else {
      el.hidden = true;
    }
    document.body.append(el);
  });
  await r.connect(url, token);
  await r.localParticipant.enableCameraAndMicrophone();
  return r.localParticipant.identity;
}
"""


def pin(ctx: Any, base: str, upstream: str, tries: int = 40) -> int:
    """Make Caddy's sticky cookie in browser context ``ctx`` point at ``upstream`` (Caddy picks at
    random for a request without one, and says whom in ``X-Upstream``); returns the tries it took."""
    from linkpronto import paths

    for n in range(1, tries + 1):
        ctx.clear_cookies()
        res = ctx.request.get(f"{base}{paths.PROBE}?nonce=pin{n}")
        if res.headers.get("x-upstream") == upstream and any(c["name"] == "lb" for c in ctx.cookies()):
            again = ctx.request.get(f"{base}{paths.PROBE}?nonce=pin{n}b")
            assert again.headers.get("x-upstream") == upstream  # sticky
            return n
    raise AssertionError(f"Caddy never picked {upstream} in {tries} tries")


def ws_connected(lk: Any) -> dict[str, str]:
    """identity → selectedNodeID for each "new client WS connected" in node ``lk``'s log: the node a
    participant's signalling WebSocket reached (LiveKit logs it at debug level)."""
    found = {}
    for line in lk.log_tail(20000).splitlines():
        if "new client WS connected" in line:
            who = re.search(r'"participant": "([^"]+)"', line)
            node = re.search(r'"selectedNodeID": "([^"]+)"', line)
            if who and node:
                found[who.group(1)] = node.group(1)
    return found


def test_whole_story_two_serves_on_one_postgres_behind_caddy_two_nodes(
        tmp_path: Path, topology: object, real_livekit_binary: Path, postgres_server: Any) -> None:
    from playwright.sync_api import sync_playwright

    from fixtures.cluster import Cluster, caddy_available
    from helpers.chromium import BASE_ARGS, FAKE_MEDIA_ARGS, PHONE
    from media_real.browser import PATIENT_REMOTE, RECORD_PCS, luminance, patient_join, wait_media

    require(caddy_available(), "caddy (Debian: caddy)")
    require(Path("/usr/bin/chromium").is_file(), "/usr/bin/chromium")
    net = "198.18.154"
    with two_nodes(topology, tmp_path, net, extra_hosts=("pat", "pro"), log_level="debug") as world:
        nodes, hosts = world["nodes"], world["hosts"]

        class PinnedCluster(Cluster):
            """Caddy on the test network's root-side address, sticky; serve i → LiveKit node i."""
            caddy_host = f"{net}.254"
            caddy_policy = "cookie lb"

            def env_for(self, inst: Any) -> dict[str, str]:
                env = super().env_for(inst)
                env["LIVEKIT_URL"] = nodes[self.instances.index(inst)].url
                return env

        db = postgres_server.create_database()
        with PinnedCluster(2, database_url=db, redis_url=f"redis://{world['redis']}/1", livekit_url="-",
                           workdir=tmp_path / "cluster") as cluster:
            serve_a, serve_b = cluster.instances
            cluster.wait_state("ready", 90)
            admin_a = httpx.Client(base_url=serve_a.admin_url, headers=cluster.auth, timeout=30)
            admin_b = httpx.Client(base_url=serve_b.admin_url, headers=cluster.auth, timeout=30)
            res = admin_a.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 30})
            assert res.status_code == 201, res.text
            link = res.json()
            token = link["url"].rsplit("/", 1)[1]
            # The link made by serve A is known to serve B (one PostgreSQL): B issues the host token.
            res = admin_b.post(f"/api/consultation-links/{link['id']}/host-token")
            assert res.status_code == 200, res.text
            host = res.json()
            assert host["room"] == link["room"]
            assert host["livekit_url"] == cluster.url.replace("http", "ws") + "/_linkpronto/livekit"
            args = [*BASE_ARGS, *FAKE_MEDIA_ARGS, f"--unsafely-treat-insecure-origin-as-secure={cluster.url}"]
            with sync_playwright() as pw:
                pat_browser = pw.chromium.launch(executable_path=str(hosts["pat"].chromium_wrapper(tmp_path)),
                                                 args=args)
                pro_browser = pw.chromium.launch(executable_path=str(hosts["pro"].chromium_wrapper(tmp_path)),
                                                 args=args)
                try:
                    pctx = pat_browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
                    pctx.add_init_script(RECORD_PCS)
                    pin(pctx, cluster.url, serve_a.upstream)
                    patient = pctx.new_page()
                    sockets: list[str] = []
                    answered: set[str] = set()
                    patient.on("websocket", lambda ws: sockets.append(ws.url))
                    patient.on("response", lambda r: answered.add(r.headers.get("x-upstream", "")))
                    grant = patient_join(patient, f"{cluster.url}/_linkpronto/c/{token}")
                    assert grant["room"] == link["room"]

                    rctx = pro_browser.new_context(locale="pt-BR")
                    rctx.add_init_script(RECORD_PCS)
                    pin(rctx, cluster.url, serve_b.upstream)
                    pro = rctx.new_page()
                    pro_answered: set[str] = set()
                    pro.on("response", lambda r: pro_answered.add(r.headers.get("x-upstream", "")))
                    pro.goto(f"{cluster.url}{paths_probe()}?nonce=page", wait_until="domcontentloaded")
                    identity = pro.evaluate(HOST_JOIN, {"url": host["livekit_url"], "token": host["access_token"],
                                                        "bundle": cluster.url + BUNDLE})
                    assert identity == host["identity"]

                    # Each decodes the other's video and hears the other, and the frames are not black.
                    wait_media(patient, 15)
                    wait_media(pro, 15)
                    patient.wait_for_function(f"() => document.querySelector({PATIENT_REMOTE!r})?.videoWidth > 0",
                                              timeout=10_000)
                    pro.wait_for_function("() => document.querySelector('#remote')?.videoWidth > 0",
                                          timeout=10_000)
                    assert luminance(patient, PATIENT_REMOTE) > 20 and luminance(pro, "#remote") > 20
                    # Every answer each browser got came from its own serve instance (through Caddy).
                    assert answered - {""} == {serve_a.upstream}, answered
                    assert pro_answered - {""} == {serve_b.upstream}, pro_answered
                    assert sockets and all(u.startswith(cluster.url.replace("http", "ws")) for u in sockets)
                finally:
                    pat_browser.close()
                    pro_browser.close()
            # Different nodes: serve A relayed the patient's signalling to node A, serve B the
            # professional's to node B — each node's log names exactly its own browser's WebSocket —
            # and both RTC sessions run on the room's node (one of them reached it through Redis).
            patient_id, pro_id = grant["identity"], host["identity"]
            on_a, on_b = ws_connected(nodes[0]), ws_connected(nodes[1])
            assert patient_id in on_a and patient_id not in on_b, (on_a, on_b)
            assert pro_id in on_b and pro_id not in on_a, (on_a, on_b)
            assert on_a[patient_id] == on_b[pro_id]  # one room, on one node, whichever signalled where
            sessions = [rtc_sessions(lk, (patient_id, pro_id)) for lk in nodes]
            assert sorted(map(sorted, sessions)) == [[], sorted([patient_id, pro_id])], sessions
            admin_a.close()
            admin_b.close()


def paths_probe() -> str:
    from linkpronto import paths

    return paths.PROBE
