"""The double and the real livekit-server v1.13.5 answer alike wherever linkpronto depends on it.

Every test runs twice (``target`` is ``double`` then ``real``): validate, the signalling WebSocket on
``/rtc`` and ``/rtc/v1`` (``join_request``), every RoomService call linkpronto makes, webhook
signatures and event order (``participant_joined`` only for an active participant; a signalling-only
one gets ``participant_connection_aborted``), ``room.auto_create: false`` and config strictness.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest
import websockets
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol import models, rtc

from helpers.lp import TEST_KEY, TEST_SECRET
from livekit_conformance.harness import Target, first_response, join_request_param, signal_url, twirp

pytestmark = [pytest.mark.slow, pytest.mark.real_livekit]


def room_name() -> str:
    return f"conf-{uuid.uuid4().hex[:8]}"


def create_room(target: Target, room: str) -> dict[str, object]:
    res = twirp(target, "CreateRoom", {"name": room, "empty_timeout": 30})
    assert res.status_code == 200, res.text
    return dict(res.json())


def validate(target: Target, token: str, v1: bool = False) -> httpx.Response:
    if v1:  # livekit-client 2.23 validates v1 with the same join_request it connects with
        params = {"access_token": token, "join_request": join_request_param()}
        return httpx.get(f"{target.url}/rtc/v1/validate", params=params, timeout=10)
    return httpx.get(f"{target.url}/rtc/validate", params={"access_token": token}, timeout=10)


def test_v1_without_join_request_is_400(target: Target) -> None:
    room = room_name()
    create_room(target, room)
    res = httpx.get(f"{target.url}/rtc/v1/validate", params={"access_token": target.token(room, "p")}, timeout=10)
    assert res.status_code == 400 and "join_request is required" in res.text

    async def go() -> int:
        try:
            async with websockets.connect(f"{target.ws_url}/rtc/v1?access_token={target.token(room, 'p')}"):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(go()) == 400


# --- validate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("v1", [False, True], ids=["rtc", "rtc-v1"])
def test_validate_good_token_for_an_existing_room(target: Target, v1: bool) -> None:
    room = room_name()
    create_room(target, room)
    res = validate(target, target.token(room, "p1"), v1)
    assert res.status_code == 200 and res.text.strip() == "success", res.text


def test_validate_bad_and_expired_tokens_are_401(target: Target) -> None:
    room = room_name()
    create_room(target, room)
    good = target.token(room, "p1")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert validate(target, forged).status_code == 401
    # expired beyond the 60 s leeway both servers allow
    import datetime

    from livekit.api import AccessToken, VideoGrants

    expired = (AccessToken(TEST_KEY, TEST_SECRET).with_identity("p1")
               .with_grants(VideoGrants(room_join=True, room=room))
               .with_ttl(datetime.timedelta(seconds=-120)).to_jwt())
    assert validate(target, expired).status_code == 401
    assert validate(target, "not-a-jwt").status_code == 401


@pytest.mark.parametrize("v1", [False, True], ids=["rtc", "rtc-v1"])
def test_validate_unknown_room_is_404_when_auto_create_is_false(target: Target, v1: bool) -> None:
    res = validate(target, target.token(room_name(), "p1"), v1)
    assert res.status_code == 404, (res.status_code, res.text)
    assert "requested room does not exist" in res.text


# --- signalling WebSocket -----------------------------------------------------------------------------
@pytest.mark.parametrize("v1", [False, True], ids=["rtc", "rtc-v1"])
def test_websocket_join_answers_a_join_response_with_our_ice_servers(target: Target, v1: bool) -> None:
    room = room_name()
    create_room(target, room)

    async def go() -> rtc.JoinResponse:
        async with websockets.connect(signal_url(target, target.token(room, "pat"), v1=v1)) as ws:
            return (await first_response(ws)).join

    join = asyncio.run(go())
    assert join.room.name == room
    assert join.participant.identity == "pat"
    assert join.server_info.protocol >= 16
    urls = [u for s in join.ice_servers for u in s.urls]
    stun = target.config["rtc"]["stun_servers"][0]
    assert urls and all(stun in u for u in urls), urls  # never Google's STUN servers
    assert not any("google" in u for u in urls)


def test_websocket_join_to_an_unknown_room_is_refused_when_auto_create_is_false(target: Target) -> None:
    async def go() -> int:
        try:
            async with websockets.connect(signal_url(target, target.token(room_name(), "p"), v1=False)):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(go()) == 404


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
@pytest.mark.parametrize("kind", ["forged", "no-join-grant"])
def test_websocket_refusals_before_the_upgrade_signature_then_join_request_then_grants(
        target: Target, path: str, kind: str) -> None:
    room = room_name()
    create_room(target, room)
    if kind == "forged":
        token = target.token(room, "p")[:-3] + "xyz"
    else:
        from livekit.api import AccessToken, VideoGrants

        token = AccessToken(TEST_KEY, TEST_SECRET).with_identity("p").with_grants(
            VideoGrants(room_join=False, room=room)).to_jwt()

    async def go() -> int:
        try:
            async with websockets.connect(f"{target.ws_url}{path}?access_token={token}"):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    # a forged token is 401 first; v1 without join_request is then 400 before the grants are looked at
    assert asyncio.run(go()) == (400 if kind == "no-join-grant" and path == "/rtc/v1" else 401)


# --- RoomService (the calls linkpronto makes: livekit/remote.py RoomAdmin) ----------------------------------
def test_room_service_create_list_participants_remove_delete(target: Target) -> None:
    room = room_name()
    created = create_room(target, room)
    assert created["name"] == room

    async def go() -> tuple[list[str], int, rtc.SignalResponse]:
        async with websockets.connect(signal_url(target, target.token(room, "pat"), v1=False)) as ws:
            await first_response(ws)
            listed = twirp(target, "ListParticipants", {"room": room}).json()
            identities = [p["identity"] for p in listed.get("participants", [])]
            rooms = twirp(target, "ListRooms", {"names": [room]}).json().get("rooms", [])
            count = int(rooms[0].get("num_participants", 0)) if rooms else -1
            removed = twirp(target, "RemoveParticipant", {"room": room, "identity": "pat"})
            assert removed.status_code == 200, removed.text
            leave = await first_response(ws, "leave")
            return identities, count, leave

    identities, count, leave = asyncio.run(go())
    assert identities == ["pat"]  # ListParticipants lists it (state JOINED)...
    assert count == 0  # ...but ListRooms counts active participants only: a signalling-only one (a probe) is 0
    assert leave.leave.can_reconnect is False
    gone = twirp(target, "RemoveParticipant", {"room": room, "identity": "pat"})
    assert gone.status_code == 404
    assert twirp(target, "ListParticipants", {"room": "no-such-room"}).json().get("participants", []) == []
    assert twirp(target, "DeleteRoom", {"room": "no-such-room"}).status_code == 404
    assert twirp(target, "DeleteRoom", {"room": room}).status_code == 200
    names = [r["name"] for r in twirp(target, "ListRooms", {}).json().get("rooms", [])]
    assert room not in names


def test_room_service_refuses_tokens_without_the_grant(target: Target) -> None:
    room = room_name()
    create_room(target, room)
    res = twirp(target, "ListRooms", {}, token=target.token(room, "pat"))
    assert res.status_code in (401, 403), res.status_code
    assert twirp(target, "ListRooms", {}, token="nope").status_code == 401


# --- webhooks --------------------------------------------------------------------------------------------
def test_signalling_only_participant_is_aborted_never_joined_and_hooks_are_signed(target: Target) -> None:
    room = room_name()
    create_room(target, room)

    async def go() -> None:
        async with websockets.connect(signal_url(target, target.token(room, "ghost"), v1=True)) as ws:
            await first_response(ws)
            await asyncio.sleep(1.0)

    asyncio.run(go())
    events = target.hooks.wait_for(room, "participant_connection_aborted", 40)
    assert "participant_joined" not in events, events
    assert events.index("room_started") < events.index("participant_connection_aborted")
    receiver = WebhookReceiver(TokenVerifier(TEST_KEY, TEST_SECRET))
    for hook in [h for h in target.hooks.hooks if h.json().get("room", {}).get("name") == room]:
        event = receiver.receive(hook.body.decode(), hook.auth)
        assert event.room.name == room
    tampered = target.hooks.hooks[-1]
    with pytest.raises(Exception, match="hash mismatch"):
        receiver.receive(tampered.body.decode().replace(room, room + "x"), tampered.auth)


# --- config strictness --------------------------------------------------------------------------------------
def test_config_with_an_unknown_field_is_refused(target: Target) -> None:
    bad = json.loads(json.dumps(target.config))
    bad["rtc"]["node_ipp"] = bad["rtc"]["node_ip"]
    bad["port"] = 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.yaml"
        path.write_text(json.dumps(bad))
        if target.kind == "real":
            from fixtures.livekit_real import check_config

            proc = check_config(path)
            rc, out = proc.returncode, proc.stdout
        else:
            import subprocess
            import sys

            from doubles import livekit_server

            done = subprocess.run([sys.executable, livekit_server.__file__, "--config", str(path)],
                                  capture_output=True, text=True, timeout=30)
            rc, out = done.returncode, done.stdout + done.stderr
    assert rc != 0
    assert "node_ipp" in out


# --- reconnect ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v1", [False, True], ids=["rtc", "rtc-v1"])
def test_reconnect_for_a_participant_the_room_does_not_hold_is_told_to_leave_and_rejoin(
        target: Target, v1: bool) -> None:
    """livekit-client's resume after a long outage (the phone back from the lift): the server no longer
    holds that participant, so it answers ``leave`` with ``action: RECONNECT`` (the client then joins
    anew; v1.13.5 leaves the deprecated ``can_reconnect`` false), never a ``join`` or ``reconnect``
    answer for a session that is gone."""
    room = room_name()
    create_room(target, room)

    async def go() -> rtc.SignalResponse:
        url = signal_url(target, target.token(room, "phone"), v1=v1, reconnect_sid="PA_gone1234567")
        async with websockets.connect(url) as ws:
            while True:
                res = rtc.SignalResponse()
                res.ParseFromString(await asyncio.wait_for(ws.recv(), 10))
                if res.WhichOneof("message") in ("leave", "join", "reconnect"):
                    return res

    res = asyncio.run(go())
    assert res.WhichOneof("message") == "leave", res
    assert res.leave.action == rtc.LeaveRequest.RECONNECT, res.leave
    assert not res.leave.can_reconnect, res.leave
    assert res.leave.reason == models.DisconnectReason.STATE_MISMATCH, res.leave
