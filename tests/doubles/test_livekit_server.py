"""Tests of the livekit-server test double itself, run as a real child process."""

from __future__ import annotations

import asyncio
import base64
import datetime
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from livekit import api
from livekit.protocol import models, rtc
from websockets.asyncio.client import ClientConnection, connect

from doubles.livekit_server import DoubleStartError, RunningDouble, build_app, run_double

KEY, SECRET = "APIdouble", "s" * 40
KEYS = {KEY: SECRET}

# The double under test runs as a child process (one module-wide, reset before each test).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def double() -> Iterator[RunningDouble]:
    with run_double(KEYS) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(double: RunningDouble) -> None:
    double.reset()


def join_token(room: str = "room-1", identity: str = "patient", *, secret: str = SECRET,
               ttl: datetime.timedelta = datetime.timedelta(minutes=5), join: bool = True) -> str:
    return (
        api.AccessToken(KEY, secret).with_identity(identity).with_name(f"{identity} name").with_ttl(ttl)
        .with_grants(api.VideoGrants(room_join=join, room=room)).to_jwt()
    )


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def received_close(ws: ClientConnection) -> tuple[int, str]:
    """The close frame the double sent (code, reason)."""
    close = ws.protocol.close_rcvd
    assert close is not None, "the double sent no close frame"
    return close.code, close.reason


async def wait_for(predicate, what: str, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# livekit-client 2.23's v1 parameter (a WrappedJoinRequest), which the real server requires on /rtc/v1
JOIN_REQUEST = base64.urlsafe_b64encode(
    rtc.WrappedJoinRequest(join_request=rtc.JoinRequest(metadata="lp").SerializeToString()).SerializeToString()
).decode()


def test_health_answers_ok(double: RunningDouble) -> None:
    assert http_get(double.url + "/") == (200, "OK")


@pytest.mark.parametrize("path", ["/rtc/validate", "/rtc/v1/validate"])
def test_validate_accepts_a_good_token(double: RunningDouble, path: str) -> None:
    jr = f"&join_request={JOIN_REQUEST}" if "/v1/" in path else ""
    assert http_get(f"{double.url}{path}?access_token={join_token()}{jr}") == (200, "success")
    bearer = {"Authorization": f"Bearer {join_token()}"}
    assert http_get(f"{double.url}{path}{'?' + jr[1:] if jr else ''}", bearer) == (200, "success")
    assert double.state()["validate_calls"] == 2


@pytest.mark.parametrize(
    "token",
    [
        join_token(secret="another-secret-another-secret-another"),
        join_token(ttl=datetime.timedelta(minutes=-5)),
        join_token(join=False),
        "not-a-jwt",
    ],
    ids=["wrong-secret", "expired", "no-join-grant", "garbage"],
)
def test_validate_refuses_bad_tokens(double: RunningDouble, token: str) -> None:
    status, _ = http_get(f"{double.url}/rtc/validate?access_token={token}")
    assert status == 401


def test_validate_without_token_is_401(double: RunningDouble) -> None:
    assert http_get(double.url + "/rtc/validate")[0] == 401


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
async def test_websocket_join_and_leave(double: RunningDouble, path: str) -> None:
    url = f"{double.ws_url}{path}?access_token={join_token('room-ws', 'ana')}&auto_subscribe=1&sdk=js"
    url += f"&join_request={JOIN_REQUEST}" if path == "/rtc/v1" else ""
    async with connect(url) as ws:
        first = rtc.SignalResponse.FromString(await asyncio.wait_for(ws.recv(), 5))
        assert first.WhichOneof("message") == "join"
        assert first.join.room.name == "room-ws"
        assert first.join.participant.identity == "ana"
        assert first.join.participant.sid.startswith("PA_")
        assert first.join.server_info.version
        state = double.state()
        assert state["participants"] == [
            {"room": "room-ws", "identity": "ana", "name": "ana name", "sid": first.join.participant.sid}
        ]
        assert state["ws_requests"][-1]["path"] == path
        await ws.send(rtc.SignalRequest(ping_req=rtc.Ping(timestamp=123)).SerializeToString())
        pong = rtc.SignalResponse.FromString(await asyncio.wait_for(ws.recv(), 5))
        assert pong.pong_resp.last_ping_timestamp == 123
    await wait_for(lambda: double.state()["participants"] == [], "participant to be unregistered")


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
@pytest.mark.parametrize("token", [join_token(join=False), join_token(secret="x" * 40), ""])
async def test_websocket_refused_before_upgrade(double: RunningDouble, path: str, token: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(f"{double.ws_url}{path}?access_token={token}&join_request={JOIN_REQUEST}"):
            pass
    assert refused.value.response.status_code == 401
    assert double.state()["ws_connections"] == 0


async def test_echo_mode_round_trips_frames_and_close_code(double: RunningDouble) -> None:
    async with connect(f"{double.ws_url}/rtc/v1?lp_echo=1") as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        await ws.send(b"\x00\x01\xff")
        assert await asyncio.wait_for(ws.recv(), 5) == b"\x00\x01\xff"
        await ws.close(code=4001, reason="bye")
    assert received_close(ws) == (4001, "bye")


async def test_echo_mode_closes_with_requested_code(double: RunningDouble) -> None:
    async with connect(f"{double.ws_url}/rtc?lp_echo=1") as ws:
        await ws.send("lp_close:4100:done")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert received_close(ws) == (4100, "done")


async def test_room_service_through_the_python_sdk(double: RunningDouble) -> None:
    url = f"{double.ws_url}/rtc?access_token={join_token('consult', 'bob')}&lp_active=1"
    async with connect(url) as ws, api.LiveKitAPI(double.url, KEY, SECRET) as lk:
        await asyncio.wait_for(ws.recv(), 5)
        rooms = await lk.room.list_rooms(api.ListRoomsRequest(names=["consult", "nobody-here"]))
        assert [(r.name, r.num_participants) for r in rooms.rooms] == [("consult", 1)]
        listed = await lk.room.list_participants(api.ListParticipantsRequest(room="consult"))
        assert [p.identity for p in listed.participants] == ["bob"]
        await lk.room.remove_participant(api.RoomParticipantIdentity(room="consult", identity="bob"))
        leave = rtc.SignalResponse.FromString(await asyncio.wait_for(ws.recv(), 5))
        assert leave.leave.reason == models.DisconnectReason.PARTICIPANT_REMOVED
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert received_close(ws)[0] == 1000
        with pytest.raises(api.TwirpError) as missing:
            await lk.room.remove_participant(api.RoomParticipantIdentity(room="consult", identity="bob"))
        assert (missing.value.code, missing.value.status) == ("not_found", 404)
        await lk.room.delete_room(api.DeleteRoomRequest(room="consult"))
    calls = [(c["method"], c["room"], c["identity"], c["status"]) for c in double.state()["calls"]]
    assert calls == [
        ("ListRooms", "", "", 200),
        ("ListParticipants", "consult", "", 200),
        ("RemoveParticipant", "consult", "bob", 200),
        ("RemoveParticipant", "consult", "bob", 404),
        ("DeleteRoom", "consult", "", 200),
    ]
    assert double.state()["participants"] == []


async def test_delete_room_closes_everyone_in_it(double: RunningDouble) -> None:
    urls = [f"{double.ws_url}/rtc/v1?access_token={join_token('group', who)}&join_request={JOIN_REQUEST}"
            for who in ("a", "b")]
    async with connect(urls[0]) as first, connect(urls[1]) as second, \
            api.LiveKitAPI(double.url, KEY, SECRET) as lk:
        for ws in (first, second):
            await asyncio.wait_for(ws.recv(), 5)
        await lk.room.delete_room(api.DeleteRoomRequest(room="group"))
        for ws in (first, second):
            assert rtc.SignalResponse.FromString(await asyncio.wait_for(ws.recv(), 5)).HasField("leave")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert received_close(ws)[0] == 1000
        assert double.state()["participants"] == []
        assert "group" not in [r.name for r in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms]


async def test_room_service_refuses_a_wrong_key(double: RunningDouble) -> None:
    async with api.LiveKitAPI(double.url, "APIother", SECRET) as wrong_key:
        with pytest.raises(api.TwirpError) as refused:
            await wrong_key.room.list_rooms(api.ListRoomsRequest())
    assert (refused.value.code, refused.value.status) == ("unauthenticated", 401)
    async with api.LiveKitAPI(double.url, KEY, "w" * 40) as wrong_secret:
        with pytest.raises(api.TwirpError) as refused:
            await wrong_secret.room.list_participants(api.ListParticipantsRequest(room="r"))
    assert refused.value.status == 401
    assert [c["status"] for c in double.state()["calls"]] == [401, 401]


def test_room_service_checks_the_admin_room_and_speaks_json(double: RunningDouble) -> None:
    def admin(room: str) -> dict[str, str]:
        token = api.AccessToken(KEY, SECRET).with_grants(api.VideoGrants(room_admin=True, room=room)).to_jwt()
        return {"Authorization": f"Bearer {token}"}

    endpoint = f"{double.url}/twirp/livekit.RoomService/ListParticipants"
    other_room = httpx.post(endpoint, json={"room": "mine"}, headers=admin("theirs"))
    assert other_room.status_code == 401
    assert other_room.json()["code"] == "unauthenticated"
    answer = httpx.post(endpoint, json={"room": "mine"}, headers=admin("mine"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == {"participants": []}


def test_config_file_and_sigterm_exit(tmp_path: Path) -> None:
    config = tmp_path / "livekit.yaml"
    config.write_text(
        "port: 7880\nbind_addresses: ['127.0.0.1']\nkeys:\n  APIfromfile: " + "f" * 40 + "\n"
        "rtc:\n  tcp_port: 7881\n  udp_port: 7882\n  node_ip: 127.0.0.1\nlogging:\n  level: info\n",
        encoding="utf-8",
    )
    with run_double({}, extra_args=["--config", str(config)]) as running:
        token = api.AccessToken("APIfromfile", "f" * 40).with_identity("x").with_grants(
            api.VideoGrants(room_join=True, room="r")).to_jwt()
        assert http_get(f"{running.url}/rtc/validate?access_token={token}") == (200, "success")
        assert any("starting LiveKit server" in line for line in running.output)
        running.process.terminate()
        assert running.process.wait(timeout=5) == (1 if sys.platform == "win32" else 0)


async def test_build_app_runs_in_process() -> None:
    app = build_app(KEYS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://double") as client:
        assert (await client.get("/")).text == "OK"
        assert (await client.get(f"/rtc/validate?access_token={join_token()}")).text == "success"
    assert app.state.double.snapshot()["validate_calls"] == 1


def test_port_in_use_fails_like_livekit_server(double: RunningDouble) -> None:
    with pytest.raises(DoubleStartError) as failed, run_double(KEYS, port=double.port):
        pass
    assert f"listen tcp 127.0.0.1:{double.port}: bind:" in str(failed.value)


def test_no_keys_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIVEKIT_KEYS", raising=False)
    with pytest.raises(DoubleStartError) as failed, run_double({}, startup_timeout=5):
        pass
    assert "keys must be provided" in str(failed.value)
