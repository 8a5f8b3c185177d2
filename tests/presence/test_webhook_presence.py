"""LiveKit webhooks into a real linkpronto: signature checks, presence of a link, the SSE stream."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from doubles.livekit_server import run_double, sign_webhook
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp
from helpers.net import free_port
from linkpronto import paths, schema
from linkpronto.events.webhook import ADMIN_PATH
from presence.lpkit import (
    SseReader,
    lp_settings,
    lp_with_double,
    patient_joins,
    professional_joins,
    ready_link,
    wait_presence,
)

pytestmark = pytest.mark.slow


def joined_body(room: str, *, name: str = "Maria", event_id: str = "EV_test1", identity: str = "p-00aa") -> bytes:
    doc = {
        "event": "participant_joined", "id": event_id, "createdAt": str(int(time.time())),
        "room": {"sid": "RM_test", "name": room},
        "participant": {"sid": "PA_test", "identity": identity, "name": name,
                        "attributes": {"linkpronto.role": "patient"}},
    }
    return json.dumps(doc).encode()


async def test_forged_or_altered_webhooks_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async with lp_with_double(tmp_path) as (lp, _double):
        link, _token = await ready_link(lp)
        body = joined_body(link["room"])
        good = sign_webhook(TEST_KEY, TEST_SECRET, body)
        # No admin token on these requests: the LiveKit signature is what counts.
        async with httpx.AsyncClient(base_url=lp.running.admin_url) as anon:
            post = ADMIN_PATH
            altered = body.replace(b"Maria", b"Mallory")
            cases = {
                "altered body": (altered, good),
                "forged secret": (body, sign_webhook(TEST_KEY, "not-the-secret-" + "z" * 30, body)),
                "other key": (body, sign_webhook("OtherKey", TEST_SECRET, body)),
                "no signature": (body, ""),
                "signature of another body": (body, sign_webhook(TEST_KEY, TEST_SECRET, altered)),
            }
            for what, (content, auth) in cases.items():
                headers = {"content-type": "application/webhook+json", "accept-language": "en"}
                if auth:
                    headers["authorization"] = auth
                res = await anon.post(post, content=content, headers=headers)
                assert res.status_code == 401, what
                assert res.json()["error"]["code"] == "WEBHOOK_REJECTED", what
                assert "signature" in res.json()["error"]["message"]
            assert (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["presence"] is None
            huge = await anon.post(post, content=b"{" + b" " * 300_000 + b"}", headers={"authorization": good})
            assert huge.status_code == 413

            res = await anon.post(post, content=body, headers={"content-type": "application/webhook+json",
                                                               "authorization": good})
            assert res.status_code == 200, res.text
            doc = (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()
            assert doc["presence"] == "waiting" and doc["waiting_name"] == "Maria"
            assert doc["status"] == "ready"  # the contract's status is untouched
            schema.Link.model_validate(doc)
            # A retried delivery (same event) changes nothing; "Bearer " in front is accepted too.
            again = await anon.post(post, content=body, headers={"authorization": "Bearer " + good})
            assert again.status_code == 200 and again.json()["presence"] is None
        # The other admin routes still want the token.
        async with httpx.AsyncClient(base_url=lp.running.admin_url) as anon:
            assert (await anon.get("/api/status")).status_code == 401


async def test_presence_follows_the_room_through_the_double(tmp_path: Path) -> None:
    async with lp_with_double(tmp_path, departure_s=0.3) as (lp, double):
        link, token = await ready_link(lp)
        async with SseReader(lp) as sse:
            patient = await patient_joins(lp, double, token, "Maria")
            waiting = await wait_presence(lp, link["id"], "waiting")
            assert waiting["waiting_name"] == "Maria" and waiting["presence_since"]
            host = await professional_joins(lp, double, link["id"])
            await wait_presence(lp, link["id"], "in_call")
            await patient.leave()
            await host.leave()
            ended = await wait_presence(lp, link["id"], "ended")
            assert ended["waiting_name"] is None
            events = await sse.wait(4)
        # The professional alone after the patient left is no one waiting (None), then the room ends.
        assert [e["presence"] for e in events] == ["waiting", "in_call", None, "ended"]
        assert [e["previous"] for e in events] == [None, "waiting", "in_call", None]
        first = events[0]
        assert first["link_id"] == link["id"] and first["waiting_name"] == "Maria"
        assert first["type"] == "link.presence" and first["id"].startswith("evt_")
        assert first["livekit_event"]["event"] == "participant_joined"
        assert len({e["id"] for e in events}) == 4
        for e in events:
            schema.PresenceEvent.model_validate(e)
        hooks = double.state()["webhooks"]
        assert {h["status"] for h in hooks} == {200}


async def test_patient_who_gives_up_clears_the_wait(tmp_path: Path) -> None:
    async with lp_with_double(tmp_path, departure_s=0.2) as (lp, double):
        link, token = await ready_link(lp)
        patient = await patient_joins(lp, double, token, "João")
        await wait_presence(lp, link["id"], "waiting")
        await patient.leave()
        doc = await wait_presence(lp, link["id"], None)
        assert doc["waiting_name"] is None


async def test_public_listener_takes_signed_webhooks_for_remote_livekit(tmp_path: Path) -> None:
    """LiveKit Cloud or a LiveKit on another host cannot reach loopback: it posts to the public URL."""
    async with lp_with_double(tmp_path) as (lp, _double):
        link, _token = await ready_link(lp)
        body = joined_body(link["room"], name="Ana", event_id="EV_pub1")
        url = paths.LIVEKIT_WEBHOOK
        forged = await lp.public.post(url, content=body,
                                      headers={"authorization": sign_webhook(TEST_KEY, "x" * 40, body)})
        assert forged.status_code == 401
        assert (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["presence"] is None
        ok = await lp.public.post(url, content=body, headers={"authorization": sign_webhook(TEST_KEY, TEST_SECRET, body)})
        assert ok.status_code == 200, ok.text
        doc = await wait_presence(lp, link["id"], "waiting")
        assert doc["waiting_name"] == "Ana"
        # The admin path is not served on the public listener.
        assert (await lp.public.post(ADMIN_PATH, content=body)).status_code in (404, 405)


async def test_livekit_signing_with_another_key_shows_in_the_status(tmp_path: Path) -> None:
    """A LiveKit whose webhook.api_key is not linkpronto's: every webhook is refused, and the status
    says so (with the fix) until a valid one arrives."""
    admin_port = free_port()
    conf = tmp_path / "livekit.yaml"
    other_secret = "other-secret-" + "o" * 30
    conf.write_text(yaml.safe_dump({
        "keys": {TEST_KEY: TEST_SECRET, "OtherKey": other_secret},
        "webhook": {"api_key": "OtherKey", "urls": [f"http://127.0.0.1:{admin_port}{ADMIN_PATH}"]},
    }), encoding="utf-8")
    with run_double({}, extra_args=["--config", str(conf)]) as double:
        async with run_lp(lp_settings(tmp_path, double.url, admin_port)) as lp:
            await lp.wait_state("ready", timeout=20)  # the ladder's own signalling check makes LiveKit post
            problem = None
            for _ in range(100):
                problems = (await lp.admin.get("/api/status", headers={"accept-language": "en"})).json()["problems"]
                problem = next((p for p in problems if p["code"] == "WEBHOOK_REJECTED"), None)
                if problem:
                    break
                await asyncio.sleep(0.1)
            assert problem is not None, "no WEBHOOK_REJECTED in the status"
            assert "invalid signature" in problem["message"] and "webhook.api_key" in problem["fix"]
            assert any(h["status"] == 401 for h in double.state()["webhooks"])
            link, _token = await ready_link(lp)
            cleared = False
            for i in range(10):  # LiveKit keeps posting with its wrong key: retry the race a few times
                body = joined_body(link["room"], event_id=f"EV_ok{i}")
                ok = await lp.admin.post(ADMIN_PATH, content=body,
                                         headers={"authorization": sign_webhook(TEST_KEY, TEST_SECRET, body)})
                assert ok.status_code == 200
                problems = (await lp.admin.get("/api/status")).json()["problems"]
                if "WEBHOOK_REJECTED" not in [p["code"] for p in problems]:
                    cleared = True
                    break
            assert cleared


async def test_revoking_a_link_with_a_waiting_patient_clears_the_wait(tmp_path: Path) -> None:
    """Revoke removes the patient from the room (RemoveParticipant); LiveKit reports participant_left."""
    async with lp_with_double(tmp_path, departure_s=0.2) as (lp, double):
        link, token = await ready_link(lp)
        await patient_joins(lp, double, token, "Maria")
        await wait_presence(lp, link["id"], "waiting")
        revoked = await lp.admin.delete(f"/api/consultation-links/{link['id']}")
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        doc = await wait_presence(lp, link["id"], None)
        assert doc["status"] == "revoked" and doc["waiting_name"] is None
        kinds = [h["event"] for h in double.state()["webhooks"]]
        assert "participant_left" in kinds
