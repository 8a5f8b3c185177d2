"""linkpronto in external mode on the real livekit-server v1.13.5 configured with
``room.auto_create: false``, in a namespace of ours (198.18.151.0/24; linkpronto's admin listener on
the root side's address so the server's signed webhooks reach it):

- the ladder reaches ``ready`` (the probe's room is created first: the server 404s unknown rooms);
- a patient's join creates the link's room (CreateRoom), so the token then joins;
- ``/rtc`` and ``/rtc/v1`` (``join_request``) pass through the public listener to the real server,
  anonymous ``/twirp`` and ``/debug`` never do;
- presence from the real webhooks: a signalling-only patient (media never connected) is
  ``media_aborted``, never ``waiting``; a patient whose media connects (libwebrtc in a namespace) is
  ``waiting`` only then.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from helpers.net import free_port
from helpers.tiers import require
from livekit_conformance.harness import first_response, join_request_param

pytestmark = pytest.mark.real_livekit
NET, LK_IP, ROOT_IP, PATIENT_IP = "198.18.151.0/24", "198.18.151.2", "198.18.151.254", "198.18.151.3"
PEER = Path(__file__).with_name("rtc_peer.py")


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, Any]]:
    from fixtures.livekit_real import RealLivekit, base_config, livekit_binary
    from fixtures.netns import Topology, netns_available
    from linkpronto.events.webhook import ADMIN_PATH

    require(livekit_binary() is not None, "livekit-server v1.13.5 (scripts/dev.py setup --tests)")
    require(netns_available(), "network namespaces (root and iproute2's ip)")
    admin_port = free_port()
    with Topology("lke") as topo:
        lan = topo.network("lan", NET)
        lk_host = topo.host("lk")
        topo.attach(lk_host, lan, LK_IP, default=True)
        topo.link_root(lan, ROOT_IP)
        patient = topo.host("pat")
        topo.attach(patient, lan, PATIENT_IP, default=True)
        config = base_config(LK_IP, free_port(), free_port(), free_port(), {TEST_KEY: TEST_SECRET})
        config["room"] = {"auto_create": False, "departure_timeout": 1}
        config["webhook"] = {"api_key": TEST_KEY, "urls": [f"http://{ROOT_IP}:{admin_port}{ADMIN_PATH}"]}
        with RealLivekit({TEST_KEY: TEST_SECRET}, host=lk_host, ip=LK_IP, config=config) as lk:
            yield {"lk": lk, "patient": patient, "admin_port": admin_port}


def lp_settings(tmp_path: Path, world: dict[str, Any]) -> Any:
    return settings_for(tmp_path / "d", livekit_url=world["lk"].url,
                        server={"admin_port": world["admin_port"], "admin_bind": ROOT_IP,
                                "admin_hosts": [f"{ROOT_IP}:{world['admin_port']}"]})


async def new_link(lp: Any) -> tuple[dict[str, Any], str]:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 20})
    assert res.status_code == 201, res.text
    link = res.json()
    return link, link["url"].rsplit("/", 1)[1]


async def wait_presence(lp: Any, link_id: str, value: str | None, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    doc: dict[str, Any] = {}
    seen = []
    while asyncio.get_running_loop().time() < deadline:
        doc = (await lp.admin.get(f"/api/consultation-links/{link_id}")).json()
        seen.append(doc.get("presence"))
        if doc.get("presence") == value:
            return {"doc": doc, "seen": seen}
        await asyncio.sleep(0.1)
    raise AssertionError(f"presence {value!r} not reached: {seen[-5:]} {doc}")


async def test_external_auto_create_false_ladder_join_gateway_and_presence(
        tmp_path: Path, world: dict[str, Any]) -> None:
    lk = world["lk"]
    async with run_lp(lp_settings(tmp_path, world)) as lp:
        await lp.wait_state("ready", timeout=40)
        link, token = await new_link(lp)
        rooms = httpx.post(f"{lk.url}/twirp/livekit.RoomService/ListRooms", json={}, timeout=10,
                           headers={"Authorization": "Bearer " + _admin(link["room"])}).json()
        assert link["room"] not in [r["name"] for r in rooms.get("rooms", [])]  # not created before a join

        # 1. A join creates the room (auto_create is off): the grant's token is then accepted.
        res = await lp.public.post("/_linkpronto/api/join", json={"token": token, "display_name": "Maria"})
        assert res.status_code == 200, res.text
        grant = res.json()
        base = f"ws://127.0.0.1:{lp.running.public_port}/_linkpronto/livekit"

        # 2. Through the public listener: /rtc/v1 with join_request, then plain /rtc; a signalling-only
        #    patient whose media never connects.
        for url in (f"{base}/rtc/v1?access_token={grant['access_token']}&join_request={join_request_param()}",
                    f"{base}/rtc?access_token={grant['access_token']}&protocol=16"):
            async with websockets.connect(url) as ws:
                join = (await first_response(ws)).join
                assert join.room.name == link["room"]
                assert [u for s in join.ice_servers for u in s.urls] == [f"stun:{LK_IP}:3478"]
        got = await wait_presence(lp, link["id"], "media_aborted")
        assert "waiting" not in got["seen"]  # never "waiting" for a patient who never got media
        assert got["doc"]["waiting_name"] == "Maria"

        # 3. Anonymous /twirp and /debug never pass the public listener.
        for path in ("/twirp/livekit.RoomService/ListRooms", "/debug/rooms"):
            r = await lp.public.post(f"/_linkpronto/livekit{path}", json={})
            assert r.status_code in (401, 403, 404), (path, r.status_code)

        # 4. A patient whose media connects (libwebrtc in its own namespace): "waiting" only now.
        res = await lp.public.post("/_linkpronto/api/join", json={"token": token, "display_name": "Maria"})
        grant = res.json()
        argv = [sys.executable, str(PEER), "--url", lk.ws_url, "--token", grant["access_token"],
                "--seconds", "4", "--publish"]
        proc = subprocess.Popen(world["patient"].argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            await wait_presence(lp, link["id"], "waiting", timeout=30)
        finally:
            out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert json.loads(out.strip().splitlines()[-1])["connected"], err[-2000:]
        await wait_presence(lp, link["id"], None, timeout=30)


def _admin(room: str) -> str:
    from livekit.api import AccessToken, VideoGrants

    return AccessToken(TEST_KEY, TEST_SECRET).with_grants(VideoGrants(room_list=True, room_admin=True, room=room)).to_jwt()
