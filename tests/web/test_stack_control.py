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


def _count_idle_checks(monkeypatch: Any, answer: Any = None, gate: asyncio.Event | None = None) -> list[int | None]:
    """Every answer the idle watch got from LiveKit (ListRooms' participant count), in order.

    ``answer`` replaces LiveKit's (e.g. ``None``: unanswered); else the real count is recorded. With
    ``gate``, a count waits until the test opens it (e.g. until the patient is in the room), so a short
    ``idle_timeout`` cannot race the test's own set-up."""
    from linkpronto.livekit.remote import RoomAdmin

    seen: list[int | None] = []
    real = RoomAdmin.total_participants

    async def spy(self: RoomAdmin) -> int | None:
        if gate is not None:
            await gate.wait()
        count = await real(self) if answer is None else await answer(self)
        seen.append(count)
        return count

    monkeypatch.setattr(RoomAdmin, "total_participants", spy)
    return seen


async def _states_until(lp: LP, done: Any, timeout: float = 10) -> list[str]:
    """Every state the status reports (read every 50 ms) until ``done()``: no fixed wall-clock wait."""
    seen: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "the idle watch never checked"
        state = (await lp.admin.get("/api/status")).json()["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        await asyncio.sleep(0.05)
    state = (await lp.admin.get("/api/status")).json()["state"]
    return seen if seen and seen[-1] == state else [*seen, state]


async def _join(lp: LP, **body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 10, **body})
    assert res.status_code == 201, res.text
    link = res.json()
    grant = await lp.public.post("/_linkpronto/api/join", json={"token": link["url"].rsplit("/", 1)[1]})
    assert grant.status_code == 200, grant.text
    return link, grant.json()


async def test_on_demand_never_stops_while_someone_is_in_a_call(
    tmp_path: Path, livekit_inproc: InProcessDouble, monkeypatch: Any
) -> None:
    in_the_room = asyncio.Event()  # no count before the patient is in the room (however slow the set-up)
    checks = _count_idle_checks(monkeypatch, gate=in_the_room)
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url,
                            stack={"mode": "on-demand", "idle_timeout": "0.2s"})
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
            in_the_room.set()
            # Two idle checks past idle_timeout with nobody creating links, each told "1 in a room":
            # the stack stays up (waited for by counting the checks, not by sleeping).
            assert await _states_until(lp, lambda: len(checks) >= 2) == ["ready"]
            assert checks[:2] == [1, 1]
        # The call ended: now it is idle and stops by itself (the control: the idle stop does work).
        await lp.wait_state("stopped", timeout=10)


async def test_on_demand_never_stops_when_livekit_cannot_say_the_rooms_are_empty(
    tmp_path: Path, livekit_inproc: InProcessDouble, monkeypatch: Any
) -> None:
    """ListRooms unanswered (LiveKit busy or restarting) is not "nobody in a room": a call may be on."""
    async def unanswered(self: Any) -> int | None:
        return None

    checks = _count_idle_checks(monkeypatch, unanswered)
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url,
                            stack={"mode": "on-demand", "idle_timeout": "0.2s"})
    async with run_lp(settings) as lp:
        await _join(lp)  # starts the stack
        assert await _states_until(lp, lambda: len(checks) >= 2) == ["ready"]
        assert checks[:2] == [None, None]


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
