"""The drop-in ``POST /api/generate-consultation-token`` keeps the old route's contract (issue 9, point 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from linkpronto.schema import DropInInvalid, DropInNotReady, DropInReady

pytestmark = pytest.mark.slow  # the LiveKit double is a process

OLD_KEYS = ("success", "token", "consultationUrl", "qrCode", "whatsappDeepLink", "shortMessage", "expiresAt",
            "createdAt")


async def test_ready_answer_has_every_old_key_non_null_and_the_room(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url)
    async with run_lp(settings) as lp:
        res = await lp.admin.post("/api/generate-consultation-token",
                                  json={"professionalId": "dra-ana", "clientId": "c1", "consultationType": "psi"})
        assert res.status_code == 200, res.text
        body = res.json()
        DropInReady.model_validate(body)
        for key in (*OLD_KEYS, "status", "verifiedAt", "linkId", "room"):
            assert body[key] is not None, key
        assert body["success"] is True and body["status"] == "ready"
        assert body["consultationUrl"].endswith(body["token"])
        link = (await lp.admin.get(f"/api/consultation-links/{body['linkId']}")).json()
        assert body["room"] == link["room"] and link["status"] == "ready"


async def test_bad_input_is_400_and_get_is_405_like_the_old_route(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url)
    async with run_lp(settings) as lp:
        for body in ({}, {"professionalId": ""}, {"professionalId": 5}, {"professionalId": "p", "waitS": 999}):
            res = await lp.admin.post("/api/generate-consultation-token", json=body)
            assert res.status_code == 400, (body, res.text)
            doc = res.json()
            DropInInvalid.model_validate(doc)
            assert doc["success"] is False and doc["error"] and doc["fields"]
        res = await lp.admin.post("/api/generate-consultation-token", content=b"not json")
        assert res.status_code == 400 and res.json()["success"] is False
        res = await lp.admin.post("/api/generate-consultation-token?lang=en", json={})
        assert "professionalId" in res.json()["error"]
        res = await lp.admin.get("/api/generate-consultation-token")
        assert res.status_code == 405 and res.headers["allow"] == "POST"
        assert res.json()["success"] is False and res.json()["error"]


def _is_sentence(text: str) -> bool:
    """A sentence for a person: words, ending with a full stop (not a code, not a stack trace)."""
    return text.endswith(".") and len(text.split()) >= 4 and "Traceback" not in text


async def test_livekit_down_is_202_preparing_with_a_sentence_never_success_without_url(tmp_path: Path) -> None:
    """LiveKit not answering is not final: the link exists, is preparing, and the answer says why."""
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: LiveKit is down
    settings = settings_for(tmp_path / "d", livekit_url=dead)
    async with run_lp(settings) as lp:
        res = await lp.admin.post("/api/generate-consultation-token?lang=en",
                                  json={"professionalId": "dra-ana", "waitS": 1})
        assert res.status_code == 202, res.text
        body = res.json()
        DropInNotReady.model_validate(body)
        assert body["success"] is False and "consultationUrl" not in body
        assert _is_sentence(body["error"]) and "livekit" in body["error"].lower()
        assert body["code"] == "VERIFY_TIMEOUT" and body["linkId"] in body["fix"]
        assert body["status"] == "preparing" and body["linkId"]
        assert res.headers["location"] == f"/api/consultation-links/{body['linkId']}"
        assert res.headers["retry-after"] == "2"


async def test_a_failed_stack_is_503_with_its_own_code_sentence_and_fix(tmp_path: Path) -> None:
    """Weak LiveKit keys behind a public address fail the stack: final, so 503 (not 202) with the reason."""
    dead = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(tmp_path / "d", livekit_url=dead, static_url="https://consultas.example",
                            livekit={"api_key": "devkey", "api_secret": "secret"})
    async with run_lp(settings) as lp:
        res = await lp.admin.post("/api/generate-consultation-token?lang=en",
                                  json={"professionalId": "dra-ana", "waitS": 1})
        assert res.status_code == 503, res.text
        body = res.json()
        DropInNotReady.model_validate(body)
        assert body["success"] is False and "consultationUrl" not in body
        assert body["code"] == "INSECURE_LIVEKIT_KEYS"
        assert _is_sentence(body["error"]) and body["fix"] and "location" not in res.headers
