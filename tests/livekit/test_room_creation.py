"""A join creates the link's room first (RoomService CreateRoom), so an external LiveKit configured
with ``room.auto_create: false`` lets the patient in; when LiveKit refuses, the patient gets a 503
``LIVEKIT_ROOM_NOT_CREATED`` saying why (and the use is not spent). The real server's side of this is
tests/livekit_real/test_external_mode.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from linkpronto.livekit.remote import RoomAdmin


async def _link(lp: object) -> tuple[dict[str, object], str]:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 10})  # type: ignore[attr-defined]
    assert res.status_code == 201, res.text
    link = res.json()
    return link, str(link["url"]).rsplit("/", 1)[1]


async def test_join_creates_the_room_before_handing_the_token(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)) as lp:
        await lp.wait_state("ready", timeout=20)
        link, token = await _link(lp)
        livekit_inproc.reset()
        res = await lp.public.post("/_linkpronto/api/join", json={"token": token})
        assert res.status_code == 200, res.text
        calls = [(c["method"], c["room"], c["status"]) for c in livekit_inproc.state()["calls"]]
        assert ("CreateRoom", link["room"], 200) in calls, calls


async def test_a_refused_room_is_a_503_that_says_why_and_spends_no_use(
        tmp_path: Path, livekit_inproc: InProcessDouble, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    async def refuse(self: RoomAdmin, room: str, empty_timeout_s: int = 300) -> str | None:
        return "permission_denied: permissions denied"

    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)) as lp:
        await lp.wait_state("ready", timeout=20)
        link, token = await _link(lp)
        monkeypatch.setattr(RoomAdmin, "create_room", refuse)
        res = await lp.public.post("/_linkpronto/api/join", json={"token": token})
        assert res.status_code == 503, res.text
        error = res.json()["error"]
        assert error["code"] == "LIVEKIT_ROOM_NOT_CREATED"
        assert "auto_create" not in res.text  # the patient reads no infrastructure detail...
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "LIVEKIT_ROOM_NOT_CREATED" in logged and "auto_create" in logged  # ...the operator's log does
        assert "permission_denied" in logged
        assert (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["uses"] == 0
