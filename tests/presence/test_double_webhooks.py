"""The LiveKit double's webhooks: the format LiveKit documents, verified with livekit-api's receiver."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import websockets
import yaml
from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol import models, rtc

from doubles.livekit_server import run_double
from helpers.lp import TEST_KEY, TEST_SECRET
from linkpronto.errors import WebhookRejected
from linkpronto.events import presence
from linkpronto.events.webhook import verify
from linkpronto.livekit import tokens
from presence import _jwt_manual as manual
from presence.receiver import run_receiver

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, urls: list[str], departure: float = 0.3) -> list[str]:
    path = tmp_path / "livekit.yaml"
    path.write_text(yaml.safe_dump({
        "keys": {TEST_KEY: TEST_SECRET},
        "webhook": {"api_key": TEST_KEY, "urls": urls},
        "room": {"departure_timeout": departure},
    }), encoding="utf-8")
    return ["--config", str(path)]


async def _join_and_leave(ws_url: str, room: str, identity: str, name: str, hold_s: float = 0.2,
                          *, professional: bool = False, camera: bool = False) -> None:
    if professional:
        token = tokens.host_token(TEST_KEY, TEST_SECRET, room=room, identity=identity, name=name)
    else:
        token = tokens.join_token(TEST_KEY, TEST_SECRET, room=room, identity=identity, name=name,
                                  ttl=timedelta(minutes=5))
    async with websockets.connect(f"{ws_url}/rtc?access_token={token}&lp_active=1") as ws:  # active: media up
        await ws.recv()  # the SignalResponse{join}
        if camera:  # what livekit-client sends to publish its camera
            add = rtc.AddTrackRequest(cid="cam-1", name="camera", type=models.TrackType.VIDEO,
                                      source=models.TrackSource.CAMERA, width=640, height=480)
            await ws.send(rtc.SignalRequest(add_track=add).SerializeToString())
            while True:
                res = rtc.SignalResponse.FromString(await ws.recv())  # type: ignore[arg-type]
                if res.WhichOneof("message") == "track_published":
                    assert res.track_published.cid == "cam-1" and res.track_published.track.sid
                    break
        await asyncio.sleep(hold_s)


def _kinds(requests: list[object]) -> list[str]:
    return [json.loads(r.body)["event"] for r in requests if r.status == 200]  # type: ignore[attr-defined]


def _presence_after(requests: list[object]) -> tuple[str | None, str | None]:
    """What linkpronto's presence derives from the deliveries, verified and applied in arrival order."""
    state = presence.load_state(None)
    for r in requests:
        if r.status == 200:  # type: ignore[attr-defined]
            presence.apply(state, verify(r.body, r.headers["authorization"], TEST_KEY, TEST_SECRET))  # type: ignore[attr-defined]
    return presence.derive(state)


async def test_double_sends_signed_webhooks_in_order(tmp_path: Path) -> None:
    with run_receiver() as receiver, run_double({}, extra_args=_config(tmp_path, [receiver.url])) as double:
        await _join_and_leave(double.ws_url, "consulta-x", "p-0001", "Maria")
        got = await asyncio.to_thread(
            receiver.wait_for, lambda rs: any(b"room_finished" in r.body for r in rs)
        )
        verifier = WebhookReceiver(TokenVerifier(TEST_KEY, TEST_SECRET))
        events = []
        for r in got:
            assert r.headers["content-type"] == "application/webhook+json"
            assert not r.headers["authorization"].lower().startswith("bearer")
            events.append(verifier.receive(r.body.decode(), r.headers["authorization"]))
        assert [e.event for e in events] == ["room_started", "participant_joined", "participant_left",
                                              "room_finished"]
        joined = events[1]
        assert joined.room.name == "consulta-x" and joined.participant.identity == "p-0001"
        assert joined.participant.name == "Maria"
        assert joined.participant.attributes["linkpronto.role"] == "patient"
        assert len({e.id for e in events}) == 4 and all(e.id.startswith("EV_") for e in events)
        assert len({e.room.sid for e in events}) == 1
        raw = json.loads(got[1].body)
        assert isinstance(raw["createdAt"], str) and int(raw["createdAt"]) > 0  # protojson int64
        assert raw["participant"]["identity"] == "p-0001"
        assert double.state()["webhooks"][1]["status"] == 200


async def test_double_webhook_signature_covers_the_body(tmp_path: Path) -> None:
    with run_receiver() as receiver, run_double({}, extra_args=_config(tmp_path, [receiver.url])) as double:
        await _join_and_leave(double.ws_url, "consulta-y", "h-0001", "Dra")
        got = await asyncio.to_thread(receiver.wait_for, lambda rs: len(rs) >= 2)
        body, token = got[1].body, got[1].headers["authorization"]
        # An independent HS256/body-hash check (stdlib only) agrees the double signs like LiveKit…
        assert manual.check(token, body, TEST_KEY, TEST_SECRET) == "ok"
        assert verify(body, token, TEST_KEY, TEST_SECRET).identity == "h-0001"
        # …and linkpronto refuses, specifically, an altered body and another secret.
        altered = body.replace(b"h-0001", b"h-0002")
        assert manual.check(token, altered, TEST_KEY, TEST_SECRET) == "body-hash"
        with pytest.raises(WebhookRejected) as info:
            verify(altered, token, TEST_KEY, TEST_SECRET)
        assert "hash mismatch" in info.value.reason
        other = "another-secret-" + "y" * 30
        assert manual.check(token, body, TEST_KEY, other) == "bad-signature"
        with pytest.raises(WebhookRejected) as info:
            verify(body, token, TEST_KEY, other)
        assert "Signature" in info.value.reason


async def test_double_retries_a_failed_delivery(tmp_path: Path) -> None:
    with run_receiver(statuses=[500]) as receiver, \
            run_double({}, extra_args=_config(tmp_path, [receiver.url])) as double:
        await _join_and_leave(double.ws_url, "consulta-z", "p-0002", "Ana", hold_s=0.05)
        got = await asyncio.to_thread(
            receiver.wait_for, lambda rs: any(b"room_finished" in r.body for r in rs)
        )
        first, retry = got[0], got[1]
        assert first.status == 500 and retry.status == 200
        assert first.body == retry.body  # the same event again, not a new one
        kinds = [json.loads(r.body)["event"] for r in got if r.status == 200]
        assert kinds == ["room_started", "participant_joined", "participant_left", "room_finished"]
        log = double.state()["webhooks"]
        assert log[0]["attempts"] == 2 and log[0]["status"] == 200


async def test_double_without_webhook_config_sends_nothing(tmp_path: Path) -> None:
    with run_receiver() as receiver, run_double({TEST_KEY: TEST_SECRET}) as double:
        await _join_and_leave(double.ws_url, "consulta-w", "p-0003", "Bia", hold_s=0.05)
        await asyncio.sleep(0.5)
        assert receiver.requests == []
        assert double.state()["webhooks"] == []


async def test_double_track_webhooks_in_v1_13_5_order(tmp_path: Path) -> None:
    """Checked against the real server in ``livekit_real/test_active_participants.py``: a track is
    announced after its publisher joined, and unpublished before its publisher left."""
    with run_receiver() as receiver, run_double({}, extra_args=_config(tmp_path, [receiver.url])) as double:
        await _join_and_leave(double.ws_url, "consulta-t", "h-0009", "Dra", camera=True, professional=True)
        got = await asyncio.to_thread(receiver.wait_for, lambda rs: any(b"room_finished" in r.body for r in rs))
        assert _kinds(got) == ["room_started", "participant_joined", "track_published", "track_unpublished",
                               "participant_left", "room_finished"]
        track = json.loads(got[2].body)["track"]
        assert track["type"] == "VIDEO" and track["name"] == "camera" and track["sid"].startswith("TR_")
        assert json.loads(got[3].body)["track"]["sid"] == track["sid"]
        assert verify(got[2].body, got[2].headers["authorization"], TEST_KEY, TEST_SECRET).identity == "h-0009"
        assert double.state()["webhooks"][2]["event"] == "track_published"


async def test_presence_is_right_when_the_double_reorders_a_join_after_its_leave(tmp_path: Path) -> None:
    """LiveKit retries deliveries, so a ``participant_joined`` can arrive after the same session's
    ``participant_left``: presence must not say "waiting" for a patient who is gone."""
    with run_receiver() as receiver, \
            run_double({}, extra_args=_config(tmp_path, [receiver.url], departure=5)) as double:
        double.webhook_faults(reorder={"participant_joined": 1})
        await _join_and_leave(double.ws_url, "consulta-r", "p-0007", "Maria", hold_s=0.3)
        got = await asyncio.to_thread(receiver.wait_for, lambda rs: len([r for r in rs if r.status == 200]) >= 3)
        assert _kinds(got) == ["room_started", "participant_left", "participant_joined"]  # the fault happened
        assert _presence_after(got) == (None, None)  # not "waiting" (the old, order-trusting answer)


async def test_presence_ends_the_call_when_the_double_drops_a_leave(tmp_path: Path) -> None:
    """A lost ``participant_left`` (delivery given up): the room's ``room_finished`` still ends the
    call, and until then the call stays on — presence never invents a departure."""
    with run_receiver() as receiver, \
            run_double({}, extra_args=_config(tmp_path, [receiver.url], departure=0.5)) as double:
        double.webhook_faults(drop={"participant_left": 2})

        async def both() -> None:
            await asyncio.gather(
                _join_and_leave(double.ws_url, "consulta-d", "p-0008", "Ana", hold_s=0.6),
                _join_and_leave(double.ws_url, "consulta-d", "h-0008", "Dra", hold_s=0.6, professional=True),
            )

        await both()
        got = await asyncio.to_thread(receiver.wait_for, lambda rs: any(b"room_finished" in r.body for r in rs))
        assert _kinds(got) == ["room_started", "participant_joined", "participant_joined", "room_finished"]
        assert [w["status"] for w in double.state()["webhooks"] if w["event"] == "participant_left"] == \
            ["dropped", "dropped"]
        assert _presence_after(got[:-1]) == ("in_call", None)  # no leave arrived: still in the call
        assert _presence_after(got) == ("ended", None)  # the room's end closes it


async def test_double_resumes_a_dropped_signalling_connection_like_the_real_server(tmp_path: Path) -> None:
    """``--resume-window``: as livekit-server does (``livekit_real/test_active_participants.py``), an
    active participant whose WebSocket drops is held; a reconnect with its sid resumes it (same sid,
    a ``reconnect`` answer, no ``participant_left``); one never back leaves when the window ends."""
    with run_receiver() as receiver:
        args = [*_config(tmp_path, [receiver.url], departure=0.3), "--resume-window", "1.5"]
        with run_double({}, extra_args=args) as double:
            token = tokens.join_token(TEST_KEY, TEST_SECRET, room="consulta-res", identity="p-0101", name="Lia",
                                      ttl=timedelta(minutes=5))
            base = f"{double.ws_url}/rtc?access_token={token}&lp_active=1"
            async with websockets.connect(base) as ws:
                sid = rtc.SignalResponse.FromString(await ws.recv()).join.participant.sid  # type: ignore[arg-type]
            # dropped (no leave request): held, not gone
            await asyncio.sleep(0.5)
            assert [p["sid"] for p in double.state()["participants"]] == [sid]
            async with websockets.connect(f"{base}&reconnect=1&sid={sid}") as ws:
                res = rtc.SignalResponse.FromString(await ws.recv())  # type: ignore[arg-type]
                assert res.WhichOneof("message") == "reconnect", res
                await asyncio.sleep(0.2)
            # dropped again and never back: leaves once the window is over
            got = await asyncio.to_thread(receiver.wait_for, lambda rs: any(b"room_finished" in r.body for r in rs))
            assert _kinds(got) == ["room_started", "participant_joined", "participant_left", "room_finished"]
            assert {json.loads(r.body)["participant"]["sid"] for r in got[1:3]} == {sid}
            left_at = int(json.loads(got[2].body)["createdAt"])
            joined_at = int(json.loads(got[1].body)["createdAt"])
            assert left_at - joined_at >= 1  # held for the window, not dropped at once
