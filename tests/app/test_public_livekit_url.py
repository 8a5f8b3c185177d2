"""Issue 16 point 1: the app's ``LIVEKIT_URL`` is the URL a phone can reach, and server SDK calls made
with it work through the public gateway only with a JWT the gateway verified itself.

Fast tier: linkpronto's listeners and the LiveKit double in this process; the calls are livekit-api's
own ``LiveKitAPI`` built from the app environment's ``LIVEKIT_URL`` (what a Next.js server route using
``RoomServiceClient(process.env.LIVEKIT_URL, ...)`` does), so the path it posts to is the SDK's, not ours.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from livekit import api

from helpers.inproc import InProcessDouble
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from linkpronto.app_env import app_environment
from linkpronto.gateway.twirp_auth import room_service_method, verify_admin_token


def test_app_environment_livekit_url_is_the_browser_url_and_loopback_has_its_own_name() -> None:
    env = app_environment(
        public_url="https://abc.trycloudflare.com",
        livekit_browser_url="wss://abc.trycloudflare.com/_linkpronto/livekit",
        livekit_server_url="http://127.0.0.1:7880",
        api_key="k", api_secret="s", admin_url="http://127.0.0.1:7800", admin_token="t", port=3001,
    )
    assert env["LIVEKIT_URL"] == env["NEXT_PUBLIC_LIVEKIT_URL"] == "wss://abc.trycloudflare.com/_linkpronto/livekit"
    assert env["LINKPRONTO_LIVEKIT_INTERNAL_URL"] == "ws://127.0.0.1:7880"
    # No public URL yet: empty, never the loopback one in its place.
    early = app_environment(public_url=None, livekit_browser_url=None, livekit_server_url="http://127.0.0.1:7880",
                            api_key="k", api_secret="s", admin_url="a", admin_token="t", port=None)
    assert early["LIVEKIT_URL"] == ""


def _token(*, key: str = TEST_KEY, secret: str = TEST_SECRET, ttl: int = 600, **video: object) -> str:
    now = int(time.time())
    return jwt.encode({"iss": key, "sub": "server", "nbf": now, "exp": now + ttl, "video": video}, secret,
                      algorithm="HS256")


@pytest.mark.parametrize(("method", "token", "why"), [
    ("ListRooms", _token(roomList=True), None),
    ("CreateRoom", _token(roomCreate=True), None),
    ("ListParticipants", _token(roomAdmin=True, room="r"), None),
    ("ListRooms", _token(roomCreate=True), "no roomList grant"),
    ("ListRooms", _token(roomList=True, ttl=-5), "expired"),
    ("ListRooms", _token(roomList=True, secret="another-secret-of-sufficient-length-000"), "invalid token"),
    ("ListRooms", _token(roomList=True, key="otherkey"), "another API key"),
    ("ListRooms", jwt.encode({"iss": TEST_KEY, "video": {"roomList": True}}, TEST_SECRET, algorithm="HS256"),
     "invalid token"),  # no exp
    ("ListRooms", jwt.encode({"iss": TEST_KEY, "exp": time.time() + 60, "video": {"roomList": True}}, None,
                             algorithm="none"), "not HS256"),
])
def test_verify_admin_token(method: str, token: str, why: str | None) -> None:
    got = verify_admin_token(token, TEST_KEY, TEST_SECRET, method)
    assert (got is None) if why is None else (got is not None and got.startswith(why)), got


def test_only_room_service_methods_are_candidates() -> None:
    assert room_service_method("/twirp/livekit.RoomService/ListRooms") == "ListRooms"
    for path in ("/twirp/livekit.Egress/ListEgress", "/twirp/livekit.RoomService/ListRooms/x",
                 "/twirp/livekit.RoomService/", "/debug/pprof", "/twirp/livekit.RoomService/Nope",
                 "/twirp/livekit.SIP/CreateSIPParticipant"):
        assert room_service_method(path) is None, path


async def test_room_service_through_the_public_url_needs_a_verified_token(
    tmp_path: Path, livekit_inproc: InProcessDouble,
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        env = lp.stack._app_environment(settings.app, lp.stack._app_context())
        url = env["LIVEKIT_URL"]
        assert url == f"ws://127.0.0.1:{lp.running.public_port}/_linkpronto/livekit", env
        assert env["LINKPRONTO_LIVEKIT_INTERNAL_URL"] == livekit_inproc.ws_url

        # Valid: the SDK signs with the env's pair; the call passes the gateway and LiveKit answers.
        async with api.LiveKitAPI(url, env["LIVEKIT_API_KEY"], env["LIVEKIT_API_SECRET"], failover=False) as lk:
            await lk.room.create_room(api.CreateRoomRequest(name="consulta-dra-ana"))
            rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        assert "consulta-dra-ana" in [r.name for r in rooms.rooms]
        livekit_inproc.reset()

        # Forged (another secret), no token, a join-only token, GET, another service: refused at the
        # gateway with the same 404 as before — LiveKit never sees them.
        forged = api.LiveKitAPI(url, env["LIVEKIT_API_KEY"], "forged-secret-forged-secret-forged-0000",
                                failover=False)
        try:
            with pytest.raises(api.ServerError) as refused:
                await forged.room.list_rooms(api.ListRoomsRequest())
            assert refused.value.status == 404
        finally:
            await forged.aclose()
        base = "/_linkpronto/livekit/twirp/livekit.RoomService/ListRooms"
        join_only = _token(roomJoin=True, room="consulta-dra-ana")
        for headers in ({}, {"Authorization": f"Bearer {join_only}"}, {"Authorization": "Bearer x.y.z"},
                        {"Authorization": f"Basic {_token(roomList=True)}"}):
            res = await lp.public.post(base, json={}, headers=headers)
            assert res.status_code == 404, (headers, res.text)
        good = {"Authorization": f"Bearer {_token(roomList=True)}"}
        assert (await lp.public.get(base, headers=good)).status_code == 404
        for path in ("/_linkpronto/livekit/twirp/livekit.Egress/ListEgress", "/_linkpronto/livekit/debug/pprof",
                     "/_linkpronto/livekit/debug/rooms", "/_linkpronto/livekit/twirp/livekit.RoomService/ListRooms/"):
            assert (await lp.public.post(path, json={}, headers=good)).status_code == 404, path
        assert livekit_inproc.state()["calls"] == []
        # The same valid token by hand passes (JSON twirp).
        ok = await lp.public.post(base, json={}, headers=good)
        assert ok.status_code == 200 and "consulta-dra-ana" in ok.text
