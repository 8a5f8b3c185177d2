"""Issue 11, attacks 5 and 6: stored input validated (never truncated), strict types, lone surrogates;
joins during a LiveKit outage use nothing; a revoked link's token stops working."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import jwt
import pytest

from doubles.livekit_server import RunningDouble, run_double
from helpers.lp import LP, TEST_KEY, TEST_SECRET, run_lp, settings_for
from linkpronto.links.inputs import DEVICE_CHECK_MAX_BYTES
from security.child import DEVICE_CHECK, JOIN, page_path

pytestmark = pytest.mark.slow
SURROGATE = '"\\ud800"'  # JSON text for a lone surrogate


def _s(text: str, token: str = "") -> str:
    """JSON text with ``@S`` replaced by a lone surrogate and ``TOKEN`` by ``token``."""
    return text.replace("@S", SURROGATE).replace("TOKEN", token)


def _raw(obj_json: str) -> dict[str, str]:
    return {"content": obj_json, "headers": {"content-type": "application/json"}}  # type: ignore[dict-item]


async def _ready_link(lp: LP, **extra: object) -> tuple[dict[str, object], str]:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 20, **extra})
    assert res.status_code == 201, res.text
    link = res.json()
    return link, str(link["url"]).rsplit("/", 1)[1]


def _result(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"ok": True, "checks": [{"name": "websocket", "status": "ok", "message": "fine"}],
                               "camera": "ok", "microphone": "ok", "phase": "preflight", "lang": "pt-BR"}
    base.update(over)
    return base


async def test_device_checks_validated_and_the_link_list_stays_200(tmp_path: Path, livekit_double: RunningDouble) -> None:
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_double.url)) as lp:
        await lp.wait_state("ready")
        link, token = await _ready_link(lp)
        ok = await lp.public.post(DEVICE_CHECK, json={"token": token, "result": _result()})
        assert ok.status_code == 204, ok.text
        # Oversized (fits the 64 KiB body, not the stored schema), lone surrogates anywhere, bad types.
        big = _result(user_agent="x" * 500, checks=[{"name": "n", "status": "s", "message": "m" * 499}] * 32)
        assert len(json.dumps(big)) > DEVICE_CHECK_MAX_BYTES
        bad_bodies = [
            json.dumps({"token": token, "result": big}),
            _s('{"token": "TOKEN", "result": {"ok": true, "media_error": @S}}', token),
            _s('{"token": "TOKEN", "result": {"ok": true, "checks": [{"name": @S, "status": "x"}]}}', token),
            _s('{"token": @S, "result": {"ok": true}}'),
            json.dumps({"token": token, "result": {"ok": "yes"}}),
            json.dumps({"token": token, "result": {"ok": 1}}),
            json.dumps({"token": token, "result": "text"}),
            json.dumps({"token": 5, "result": {"ok": True}}),
            "[1, 2]",
            "not json",
        ]
        for body in bad_bodies:
            res = await lp.public.post(DEVICE_CHECK, **_raw(body))  # type: ignore[arg-type]
            assert res.status_code == 422, (body[:80], res.status_code, res.text[:200])
        # A join with a lone-surrogate token or a bool token: 422, never 500.
        for body in (_s('{"token": @S}'), '{"token": true}', _s('{"token": "ok", "display_name": @S}')):
            res = await lp.public.post(JOIN, **_raw(body))  # type: ignore[arg-type]
            assert res.status_code == 422, (body, res.text[:200])
        # The professional's list and the CLI's source stay readable, and hold the valid result.
        listed = await lp.admin.get("/api/consultation-links")
        assert listed.status_code == 200
        mine = next(i for i in listed.json()["items"] if i["id"] == link["id"])
        assert mine["device_check"]["ok"] is True and mine["device_check"]["camera"] == "ok"


async def test_admin_api_types_are_strict(tmp_path: Path, livekit_double: RunningDouble) -> None:
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_double.url)) as lp:
        cases = [
            '{"professional_id": "p", "max_uses": true}',
            '{"professional_id": "p", "max_uses": "3"}',
            '{"professional_id": "p", "expires_in_s": 1e-9}',
            '{"professional_id": "p", "expires_in_s": 59}',
            '{"professional_id": "p", "wait_s": "1"}',
            _s('{"professional_id": @S}'),
            _s('{"professional_id": "p", "client_id": @S}'),
            '{"professional_id": 7}',
        ]
        for body in cases:
            res = await lp.admin.post("/api/consultation-links", **_raw(body))  # type: ignore[arg-type]
            assert res.status_code == 422, (body, res.status_code, res.text[:200])
        res = await lp.admin.post("/api/generate-consultation-token", **_raw(_s('{"professionalId": @S}')))  # type: ignore[arg-type]
        assert res.status_code == 400, res.text[:200]
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "expires_in_s": 60, "wait_s": 0})
        assert res.status_code in (201, 202)


async def test_join_during_livekit_outage_is_503_and_uses_nothing(tmp_path: Path) -> None:
    with run_double({TEST_KEY: TEST_SECRET}) as double:
        port = double.port
        settings = settings_for(tmp_path / "d", livekit_url=double.url)
        async with run_lp(settings) as lp:
            await lp.wait_state("ready")
            link, token = await _ready_link(lp, max_uses=1)
            double.process.terminate()
            double.process.wait(timeout=10)
            for lang, word in (("pt-BR", "vídeo"), ("en", "video")):
                res = await lp.public.post(JOIN, json={"token": token}, headers={"Accept-Language": lang})
                assert res.status_code == 503, res.text
                assert res.headers.get("retry-after")
                err = res.json()["error"]
                assert word in err["message"] and err["fix"]
            assert (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["uses"] == 0
            # The page still opens (no side effect) and, once LiveKit is back, the one-use link joins.
            assert (await lp.public.get(page_path(token))).status_code == 200
            with run_double({TEST_KEY: TEST_SECRET}, port=port):
                deadline = time.monotonic() + 15
                while True:
                    res = await lp.public.post(JOIN, json={"token": token})
                    if res.status_code != 503 or time.monotonic() > deadline:
                        break
                    await _sleep(0.3)
                assert res.status_code == 200, res.text
                assert (await lp.public.post(JOIN, json={"token": token})).status_code == 410


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


async def test_revoked_links_token_is_refused_within_a_minute(tmp_path: Path, livekit_double: RunningDouble) -> None:
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_double.url)) as lp:
        await lp.wait_state("ready")
        link, token = await _ready_link(lp)
        grant = (await lp.public.post(JOIN, json={"token": token})).json()
        jwt_ = grant["access_token"]
        claims = jwt.decode(jwt_, options={"verify_signature": False})
        assert claims["exp"] - claims["nbf"] <= 60  # the default join_token_ttl
        validate = "/_linkpronto/livekit/rtc/validate"
        assert (await lp.public.get(validate, params={"access_token": jwt_})).status_code == 200
        assert (await lp.admin.delete(f"/api/consultation-links/{link['id']}")).status_code == 200
        # Through the only way a browser reaches LiveKit: refused at once.
        res = await lp.public.get(validate, params={"access_token": jwt_})
        assert res.status_code == 401
        async with httpx.AsyncClient() as c:
            # LiveKit itself (the double honours exp, with LiveKit's 60 s leeway): a token past it fails.
            expired = jwt.encode({**claims, "nbf": int(time.time()) - 200, "exp": int(time.time()) - 61},
                                 TEST_SECRET, algorithm="HS256")
            res = await c.get(livekit_double.url + "/rtc/validate", params={"access_token": expired})
            assert res.status_code == 401 and "expired" in res.text.lower()
        # Another link's token is untouched.
        _, other = await _ready_link(lp)
        other_grant = (await lp.public.post(JOIN, json={"token": other})).json()
        assert (await lp.public.get(validate, params={"access_token": other_grant["access_token"]})).status_code == 200
