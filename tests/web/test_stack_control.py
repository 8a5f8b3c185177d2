"""Starting and stopping the stack: ``POST /api/stack/start|stop`` and on-demand mode's idle stop, which
never happens while someone is in a call. Real listeners in-process, the LiveKit double in-process
(it reports the participants of each room through ListRooms, as livekit-server does)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import websockets

from helpers.inproc import InProcessDouble
from helpers.lp import LP, run_lp, settings_for
from linkpronto import schema


async def _states_during(lp: LP, seconds: float) -> list[str]:
    """Every state the status reports over ``seconds`` (read every 50 ms)."""
    seen: list[str] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        state = (await lp.admin.get("/api/status")).json()["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        await asyncio.sleep(0.05)
    return seen


async def _join(lp: LP, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 10, **body})
    assert res.status_code == 201, res.text
    link = res.json()
    grant = await lp.public.post("/_linkpronto/api/join", json={"token": link["url"].rsplit("/", 1)[1]})
    assert grant.status_code == 200, grant.text
    return link, grant.json()


async def test_on_demand_never_stops_while_someone_is_in_a_call(
    tmp_path: Path, livekit_inproc: InProcessDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url,
                            stack={"mode": "on-demand", "idle_timeout": "1s"})
    async with run_lp(settings) as lp:
        assert (await lp.admin.get("/api/status")).json()["state"] == "stopped"
        link, grant = await _join(lp)  # the first link request starts the stack
        # The patient joins the room through the public listener, as the page does.
        ws_url = f"ws://127.0.0.1:{lp.running.public_port}/_linkpronto/livekit/rtc"
        # lp_active=1: the double takes it as media connected (LiveKit's ListRooms counts active ones only)
        async with websockets.connect(f"{ws_url}?access_token={grant['access_token']}&lp_active=1") as ws:
            await ws.recv()  # LiveKit's SignalResponse{join}: the participant is in the room
            in_room = [p for p in livekit_inproc.state()["participants"] if p["room"] == link["room"]]
            assert len(in_room) == 1
            # Two idle checks past idle_timeout (1 s, checked every 0.5 s) with nobody creating links:
            # someone is in a room, so the stack stays up.
            assert await _states_during(lp, 2.5) == ["ready"]
        # The call ended: now it is idle and stops by itself (the control: the idle stop does work).
        await lp.wait_state("stopped", timeout=10)


async def test_on_demand_never_stops_when_livekit_cannot_say_the_rooms_are_empty(
    tmp_path: Path, livekit_inproc: InProcessDouble, monkeypatch: Any
) -> None:
    """ListRooms unanswered (LiveKit busy or restarting) is not "nobody in a room": a call may be on."""
    from linkpronto.livekit.remote import RoomAdmin

    async def unanswered(self: RoomAdmin) -> int | None:
        return None

    monkeypatch.setattr(RoomAdmin, "total_participants", unanswered)
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url,
                            stack={"mode": "on-demand", "idle_timeout": "1s"})
    async with run_lp(settings) as lp:
        await _join(lp)  # starts the stack
        assert await _states_during(lp, 2.5) == ["ready"]


async def test_stack_stop_and_start_through_the_api(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        link, _ = await _join(lp)

        res = await lp.admin.post("/api/stack/stop")
        assert res.status_code == 200
        stopped = schema.Status.model_validate(res.json())
        assert stopped.state is schema.StackState.STOPPED
        assert (await lp.admin.get("/api/status")).json()["state"] == "stopped"
        # Stopping the stack revokes nothing: the link is still there, with its use.
        kept = (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()
        assert kept["status"] == "ready" and kept["uses"] == 1

        res = await lp.admin.post("/api/stack/start")
        assert res.status_code == 202
        started = schema.Status.model_validate(res.json())
        assert started.state is not schema.StackState.STOPPED
        await lp.wait_state("ready")
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "wait_s": 10})
        assert res.status_code == 201, res.text

        # Starting a running stack is harmless; both routes are admin-only.
        assert (await lp.admin.post("/api/stack/start")).status_code == 202
        await lp.wait_state("ready")
        async with httpx.AsyncClient(base_url=lp.running.admin_url) as anon:
            assert (await anon.post("/api/stack/stop")).status_code == 401
            assert (await anon.post("/api/stack/start")).status_code == 401
        assert (await lp.public.post("/api/stack/stop")).status_code == 404
        assert (await lp.admin.get("/api/status")).json()["state"] == "ready"


async def test_stack_start_after_a_failure_tries_again(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    """A failed stack is stopped and started again by ``/api/stack/start`` (here it fails again for the
    same reason, with its code: the keys are still insecure)."""
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url,
                            livekit={"api_key": "devkey", "api_secret": "secret"},
                            tunnel={"provider": "static", "static_url": "https://consultas.example.com"})
    async with run_lp(settings) as lp:
        await lp.wait_state("failed")
        res = await lp.admin.post("/api/stack/start")
        assert res.status_code == 202
        doc = await lp.wait_state("failed")
        assert any(p["code"] == "INSECURE_LIVEKIT_KEYS" for p in doc["problems"]), doc["problems"]
