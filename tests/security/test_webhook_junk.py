"""Issue 19 finding 7 replayed: unauthenticated junk on the public webhook route (LiveKit elsewhere:
external, cloud, ``serve``) is refused before its body is read, reaches the log as one line plus
summaries, changes no status stream, and plants no standing warning; a LiveKit signing with another
key still shows once."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from pathlib import Path

import pytest

from doubles.livekit_server import sign_webhook
from helpers.lp import TEST_KEY, TEST_SECRET
from linkpronto import paths
from presence.lpkit import lp_with_double, ready_link

pytestmark = pytest.mark.slow


def _fake_jwt(claims: dict[str, object]) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.{secrets.token_urlsafe(32)}"


async def test_junk_is_cheap_quiet_and_plants_no_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with lp_with_double(tmp_path) as (lp, _d):
        link, _token = await ready_link(lp)
        statuses: list[str] = []

        async def watch() -> None:
            async with lp.admin.stream("GET", "/api/status/stream") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("event: status"):
                        statuses.append(line)

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        before = len(statuses)
        junk = [{}, {"authorization": "Bearer nonsense"}, {"authorization": _fake_jwt({"sub": "x"})},
                {"authorization": "Bearer " + "a" * 20000}]
        codes = []
        for i in range(400):
            res = await lp.public.post(paths.LIVEKIT_WEBHOOK, content=b"x" * 2000, headers=junk[i % len(junk)])
            codes.append(res.status_code)
        assert set(codes) == {401}, set(codes)
        await asyncio.sleep(1.0)
        refused_lines = [r for r in caplog.records if "webhook refused" in r.getMessage()]
        assert len(refused_lines) <= 2, len(refused_lines)  # one line, then summaries at most a minute apart
        problems = (await lp.admin.get("/api/status")).json()["problems"]
        assert "WEBHOOK_REJECTED" not in [p["code"] for p in problems]
        assert len(statuses) - before <= 1, statuses[before:]  # no stream event per junk request

        # A LiveKit signing with another key pair (LiveKit-shaped): one warning, one status change.
        body = json.dumps({"event": "participant_joined", "room": {"name": link["room"]}}).encode()
        other = sign_webhook("OtherKey", "o" * 40, body)
        for _ in range(50):
            assert (await lp.public.post(paths.LIVEKIT_WEBHOOK, content=body,
                                         headers={"authorization": other})).status_code == 401
        problems = (await lp.admin.get("/api/status")).json()["problems"]
        assert "WEBHOOK_REJECTED" in [p["code"] for p in problems]
        # A valid one clears it.
        good = await lp.public.post(paths.LIVEKIT_WEBHOOK, content=body,
                                    headers={"authorization": sign_webhook(TEST_KEY, TEST_SECRET, body)})
        assert good.status_code == 200, good.text
        problems = (await lp.admin.get("/api/status")).json()["problems"]
        assert "WEBHOOK_REJECTED" not in [p["code"] for p in problems]
        await asyncio.sleep(0.5)
        assert len(statuses) - before <= 4, statuses[before:]
        watcher.cancel()
