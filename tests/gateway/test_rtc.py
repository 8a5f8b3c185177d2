"""RtcProxy under a real uvicorn, in front of the LiveKit test double (in-process, :mod:`helpers.inproc`) and of a
recording upstream: frames, close codes, token refusals, /validate, and the allow-list."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from livekit.api import AccessToken, VideoGrants
from livekit.protocol import rtc as rtc_pb
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gateway.servers import Recorder, RunningServer, WithLifespan, free_port, serve, upstream_app
from helpers.inproc import InProcessDouble as RunningDouble
from helpers.inproc import run_double_in_process
from linkpronto.gateway import RTC_PATHS, RtcProxy

KEY, SECRET = "APIgatewaytest", "s" * 40


def join_request() -> str:
    """livekit-client 2.23's ``join_request`` (base64url WrappedJoinRequest) for ``/rtc/v1``."""
    import base64

    inner = rtc_pb.JoinRequest(metadata="lp").SerializeToString()
    return base64.urlsafe_b64encode(rtc_pb.WrappedJoinRequest(join_request=inner).SerializeToString()).decode()


def token(room: str = "room-1", identity: str = "patient-1", secret: str = SECRET) -> str:
    grants = VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    return AccessToken(KEY, secret).with_identity(identity).with_grants(grants).to_jwt()


@pytest.fixture(scope="module")
def double() -> Iterator[RunningDouble]:
    with run_double_in_process({KEY: SECRET}) as running:
        yield running


@pytest.fixture(scope="module")
def gateway(double: RunningDouble) -> Iterator[RunningServer]:
    with serve(WithLifespan(RtcProxy(lambda: double.url))) as server:
        yield server


@pytest.fixture(scope="module")
def upstream_and_gw() -> Iterator[tuple[Recorder, RunningServer, RunningServer]]:
    recorder = Recorder()
    with serve(upstream_app(recorder), proxy_headers=False) as upstream, serve(WithLifespan(RtcProxy(lambda: upstream.url))) as gw:
        yield recorder, gw, upstream


@pytest.fixture
def recorded(upstream_and_gw: tuple[Recorder, RunningServer, RunningServer]) -> tuple[Recorder, RunningServer]:
    return upstream_and_gw[0], upstream_and_gw[1]


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
def test_frames_pass_both_ways(gateway: RunningServer, path: str) -> None:
    with connect(f"{gateway.ws_url}{path}?lp_echo=1", open_timeout=5) as ws:
        ws.send("hello, doctor")
        assert ws.recv(timeout=5) == "hello, doctor"
        ws.send(b"\x00\x01binary\xff")
        assert ws.recv(timeout=5) == b"\x00\x01binary\xff"
        big = bytes(range(256)) * 4096  # 1 MiB in one frame
        ws.send(big)
        assert ws.recv(timeout=5) == big


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
def test_upstream_close_code_reaches_client(gateway: RunningServer, path: str) -> None:
    with connect(f"{gateway.ws_url}{path}?lp_echo=1", open_timeout=5) as ws:
        ws.send("lp_close:4321:room closed")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "room closed")


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
def test_client_close_code_reaches_upstream(recorded: tuple[Recorder, RunningServer], path: str) -> None:
    recorder, gw = recorded
    before = len(recorder.ws_closes)
    with connect(f"{gw.ws_url}{path}?x=1", open_timeout=5) as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
        ws.close(4002, "patient left")
    _wait_for(lambda: len(recorder.ws_closes) > before)
    assert recorder.ws_closes[-1] == (4002, "patient left")


def test_valid_token_joins_through_proxy(gateway: RunningServer, double: RunningDouble) -> None:
    jr = join_request()  # livekit-client 2.23's v1 parameter; LiveKit answers 400 without it
    with connect(f"{gateway.ws_url}/rtc/v1?access_token={token()}&auto_subscribe=1&join_request={jr}", open_timeout=5) as ws:
        first = ws.recv(timeout=5)
        assert isinstance(first, bytes)
        response = rtc_pb.SignalResponse()
        response.ParseFromString(first)
        assert response.WhichOneof("message") == "join"
        assert response.join.room.name == "room-1"
        assert any(p["identity"] == "patient-1" for p in double.state()["participants"])
    request = double.state()["ws_requests"][-1]
    assert request["path"] == "/rtc/v1" and request["query"]["auto_subscribe"] == "1"


@pytest.mark.parametrize("path", ["/rtc", "/rtc/v1"])
def test_refused_token_is_refused_with_same_status(gateway: RunningServer, path: str) -> None:
    bad = token(secret="x" * 40)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gateway.ws_url}{path}?access_token={bad}", open_timeout=5)
    assert refused.value.response.status_code == 401


@pytest.mark.parametrize("path", ["/rtc/validate", "/rtc/v1/validate"])
def test_validate_is_proxied(gateway: RunningServer, double: RunningDouble, path: str) -> None:
    params = {"access_token": token(), **({"join_request": join_request()} if "/v1/" in path else {})}
    good = httpx.get(f"{gateway.url}{path}", params=params, timeout=5)
    assert (good.status_code, good.text) == (200, "success")
    bad = httpx.get(f"{gateway.url}{path}", params={"access_token": "not-a-jwt"}, timeout=5)
    assert bad.status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/twirp/livekit.RoomService/ListRooms", "/debug/rooms", "/debug/pprof/", "/", "/rtc/", "/rtc/v2",
     "/rtcx", "/RTC", "/rtc/validate/x", "/_double/state"],
)
def test_everything_else_is_404_and_never_reaches_upstream(
    recorded: tuple[Recorder, RunningServer], path: str
) -> None:
    recorder, gw = recorded
    before = list(recorder.paths())
    for method in ("GET", "POST"):
        response = httpx.request(method, gw.url + path, json={}, timeout=5)
        assert response.status_code == 404
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gw.ws_url}{path}", open_timeout=5)
    assert refused.value.response.status_code == 404
    assert recorder.paths() == before


def test_twirp_never_reaches_livekit(gateway: RunningServer, double: RunningDouble) -> None:
    admin = AccessToken(KEY, SECRET).with_grants(VideoGrants(room_list=True)).to_jwt()
    response = httpx.post(f"{gateway.url}/twirp/livekit.RoomService/ListRooms", json={},
                          headers={"Authorization": f"Bearer {admin}"}, timeout=5)
    assert response.status_code == 404
    assert double.state()["calls"] == []


def test_forwarded_headers_and_host(upstream_and_gw: tuple[Recorder, RunningServer, RunningServer]) -> None:
    recorder, gw, upstream = upstream_and_gw
    response = httpx.get(f"{gw.url}/rtc/validate?access_token=abc", headers={"Host": "meet.example.org"},
                         timeout=5)
    assert response.status_code == 200
    seen = recorder.requests[-1]
    assert seen["path"] == "/rtc/validate" and seen["query"] == "access_token=abc"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    assert seen["headers"]["x-forwarded-host"] == "meet.example.org"
    assert seen["headers"]["host"] == f"localhost:{upstream.port}"


def test_subprotocol_and_headers_reach_upstream(recorded: tuple[Recorder, RunningServer]) -> None:
    _, gw = recorded
    with connect(f"{gw.ws_url}/rtc?access_token=t0k&reconnect=1", subprotocols=["first", "chosen.v2"], compression=None,  # type: ignore[list-item]
                 additional_headers={"Origin": "https://meet.example.org", "Cookie": "c=1"},
                 open_timeout=5) as ws:
        assert ws.subprotocol == "chosen.v2"
        ws.send("headers")
        seen = json.loads(ws.recv(timeout=5))
    assert seen["__path"] == "/rtc" and seen["__query"] == "access_token=t0k&reconnect=1"
    assert seen["sec-websocket-protocol"] == "first, chosen.v2"
    assert seen["origin"] == "https://meet.example.org"
    assert seen["cookie"] == "c=1"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "permessage-deflate" not in seen.get("sec-websocket-extensions", "")


def test_compression_only_when_client_asked(recorded: tuple[Recorder, RunningServer]) -> None:
    _, gw = recorded
    with connect(f"{gw.ws_url}/rtc", compression="deflate", open_timeout=5) as ws:
        ws.send("headers")
        seen = json.loads(ws.recv(timeout=5))
    assert "permessage-deflate" in seen.get("sec-websocket-extensions", "")


def test_upstream_refusal_status_passes(recorded: tuple[Recorder, RunningServer]) -> None:
    _, gw = recorded
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{gw.ws_url}/rtc?refuse=403", open_timeout=5)
    assert refused.value.response.status_code == 403
    assert refused.value.response.body == b"no entry"


def test_no_upstream_is_503() -> None:
    with serve(WithLifespan(RtcProxy(lambda: None))) as gw:
        assert httpx.get(f"{gw.url}/rtc/validate", timeout=5).status_code == 503
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{gw.ws_url}/rtc", open_timeout=5)
        assert refused.value.response.status_code == 503


def test_upstream_down_is_502_and_token_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    caplog.set_level(logging.DEBUG)
    with serve(WithLifespan(RtcProxy(lambda: dead))) as gw:
        response = httpx.get(f"{gw.url}/rtc/validate?access_token=SECRET-TOKEN-1", timeout=5)
        assert response.status_code == 502
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{gw.ws_url}/rtc?access_token=SECRET-TOKEN-2", open_timeout=5)
        assert refused.value.response.status_code == 502
    # The test's own clients (httpx, websockets.client) log their URLs; everything else is the gateway.
    gateway_records = [r for r in caplog.records if r.name not in ("httpx", "websockets.client")]
    text = "\n".join(r.getMessage() for r in gateway_records)
    assert "LiveKit unavailable for GET /rtc/validate" in text  # the failure itself is logged...
    assert "SECRET-TOKEN" not in text  # ...but never the query string


def test_rtc_paths_constant() -> None:
    assert frozenset({"/rtc", "/rtc/v1", "/rtc/validate", "/rtc/v1/validate"}) == RTC_PATHS


def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
