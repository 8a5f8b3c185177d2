"""The media rung against the real livekit-server, through linkpronto's public URL, its libwebrtc
inside a namespace of ours: frames decoded and the pair used reported before a link is ready
(same-network); LiveKit's media address unreachable → none, MEDIA_UNREACHABLE, no link ready; and
recovery. Probe rooms are deleted after each run."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.livekit_real import RealLivekit
from fixtures.netns import IP, Host, Topology
from helpers.lp import LP, run_lp, settings_for
from helpers.net import free_port
from linkpronto.livekit.remote import RoomAdmin
from linkpronto.media import is_probe, wiring
from linkpronto.media.rung import MediaRung

pytestmark = pytest.mark.real_livekit

ROOT_IP = "198.18.20.254"  # the real_livekit fixture's root link: linkpronto's public listener binds it


@pytest.fixture
def rung_host(topology: Topology, real_livekit: RealLivekit, monkeypatch: pytest.MonkeyPatch) -> Host:
    """A host on LiveKit's LAN where the rung's probe (libwebrtc) runs: never in the root namespace."""
    host = topology.host("rung")
    topology.attach(host, topology.networks["lklan"], "198.18.20.3", default=True)
    monkeypatch.setattr(wiring, "MediaRung", functools.partial(
        MediaRung, launcher=(IP, "netns", "exec", host.ns), timeout_s=8.0))
    return host


@pytest.fixture
async def lp(tmp_path: Path, real_livekit: RealLivekit, rung_host: Host) -> AsyncIterator[LP]:
    port = free_port()
    settings = settings_for(
        tmp_path / "d", livekit_url=real_livekit.url, public_port=port,
        server={"public_bind": ROOT_IP},
        tunnel={"provider": "static", "static_url": f"http://{ROOT_IP}:{port}"},
        livekit={"node_ip": real_livekit.ip},
        verify={"media_interval": "60s"},
    )
    async with run_lp(settings) as running:
        yield running


async def probe_rooms(lk: RealLivekit) -> list[str]:
    from livekit import api as lkapi

    client = lkapi.LiveKitAPI(lk.url, *next(iter(lk.keys.items())))
    try:
        res = await client.room.list_rooms(lkapi.ListRoomsRequest())
        # The media rung's rooms (the ladder's signalling probe room "linkpronto-probe" is not a media room).
        return [r.name for r in res.rooms if is_probe(room=r.name) and r.name != "linkpronto-probe"]
    finally:
        await client.aclose()


async def wait_problem(lp: LP, code: str, timeout: float = 30.0) -> dict[str, Any]:
    for _ in range(int(timeout * 10)):
        status = (await lp.admin.get("/api/status")).json()
        if any(p["code"] == code for p in status["problems"]):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {code} within {timeout} s: {status}")


async def test_rung_proves_same_network_before_the_first_link_is_ready(lp: LP, real_livekit: RealLivekit) -> None:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 40})
    assert res.status_code == 201, res.text
    media = next(c for c in res.json()["checks"] if c["name"] == "media")
    assert media["ok"] and media["required"]
    status = (await lp.admin.get("/api/status")).json()
    m = status["media"]
    assert m["measured"] is True and m["reach"] == "same-network", m
    assert m["candidate"]["address"].startswith(real_livekit.ip + ":"), m
    assert m["candidate"]["type"] in ("host", "srflx", "prflx") and m["candidate"]["protocol"] in ("udp", "tcp")
    assert m["first_frame_ms"] is not None and m["first_frame_ms"] > 0
    assert any(p["code"] == "MEDIA_SAME_NETWORK_ONLY" for p in status["problems"])
    assert await probe_rooms(real_livekit) == []  # deleted after the run
    admin = RoomAdmin(real_livekit.url, *next(iter(real_livekit.keys.items())))
    assert await admin.total_participants() == 0


async def test_unreachable_media_address_is_none_no_link_ready_then_recovery(
        lp: LP, real_livekit: RealLivekit, rung_host: Host) -> None:
    status = await lp.wait_state("ready", timeout=40)
    keeper = lp.stack.media
    assert keeper is not None
    # What LiveKit advertises for media stops being reachable (signalling still goes through the URL).
    rung_host.block(real_livekit.ip)
    try:
        result = await keeper.run_once(status["public_url"])
        assert result.reach == "none" and result.measured
        status = await wait_problem(lp, "MEDIA_UNREACHABLE")
        assert status["state"] != "ready"
        problem = next(p for p in status["problems"] if p["code"] == "MEDIA_UNREACHABLE")
        assert "node_ip" in problem["fix"]
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 2})
        assert res.status_code == 202 and res.json()["status"] == "preparing", res.text
        link_id = res.json()["id"]
    finally:
        rung_host.unblock(real_livekit.ip)
    result = await keeper.run_once(status["public_url"])
    assert result.reach == "same-network"
    await lp.wait_state("ready", timeout=20)
    link = await lp.wait_link(link_id, "ready", timeout=20)
    assert link["url"]
    assert await probe_rooms(real_livekit) == []
