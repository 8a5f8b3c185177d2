"""Issue 19: the fuzz run — ≥ 10,000 malformed or hostile requests to linkpronto's own public routes
and to the admin API (with and without a session, cookie alone, forged Origin, odd bodies): 0 × 5xx."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import run_lp, settings_for
from linkpronto import paths

pytestmark = pytest.mark.slow
N = 10_000
PUBLIC = [paths.JOIN, paths.DEVICE_CHECK, paths.RUNTIME_CONFIG, paths.HEALTHZ, paths.PROBE,
          paths.PREFIX + "/c/{t}", "/c/{t}", paths.STATIC + "/{t}.js", paths.PREFIX + "/../{t}",
          paths.PREFIX + "/%2e%2e/{t}", paths.LIVEKIT_WEBHOOK]
ADMIN = ["/api/status", "/api/consultation-links", "/api/consultation-links/{t}", "/api/dashboard-login",
         "/api/logout", "/api/logs?component={t}", "/api/generate-consultation-token", "/api/livekit/webhook",
         "/api/consultation-links/{t}/qr.svg", "/?token={t}", "/call/{t}"]
BODIES = [b"", b"{", b"null", b"[]", b'{"token": 1}', b'{"token": "' + b"a" * 5000 + b'"}',
          b'{"professional_id": "\\ud800"}', b'{"professional_id": "x", "wait_s": -1}', b"\xff\xfe\x00",
          json.dumps({"token": "x" * 40, "display_name": "<script>"}).encode(), b'{"a":' * 500]
TOKENS = ["", "x", "a" * 300, "..", "%00", "linkpronto-probe", "ñ", "' OR 1=1 --"]


async def test_ten_thousand_hostile_requests_get_no_5xx(tmp_path: object, livekit_double: RunningDouble) -> None:
    rnd = random.Random(19)
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_double.url)) as lp:  # type: ignore[operator]
        await lp.wait_state("ready")
        admin_url = lp.running.admin_url
        public_url = str(lp.public.base_url).rstrip("/")
        five: list[tuple[str, str, int]] = []
        sem = asyncio.Semaphore(16)
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(timeout=20, limits=limits) as c:

            async def one(i: int) -> None:
                side_admin = i % 2 == 0
                path = rnd.choice(ADMIN if side_admin else PUBLIC).replace("{t}", rnd.choice(TOKENS))
                method = rnd.choice(["GET", "POST", "POST", "DELETE", "PUT", "OPTIONS", "HEAD"])
                headers = {"Content-Type": rnd.choice(["application/json", "text/plain", "x/y"])}
                if side_admin:
                    choice = rnd.random()
                    if choice < 0.3:
                        headers["Authorization"] = f"Bearer {lp.secrets.admin_token}"
                    elif choice < 0.5:
                        headers["Cookie"] = f"linkpronto_session_{admin_url.rsplit(':', 1)[1]}=stolen"
                        headers["Origin"] = admin_url
                    elif choice < 0.6:
                        headers["X-Linkpronto-Session"] = "guess"
                base = admin_url if side_admin else public_url
                body = rnd.choice(BODIES) if method in ("POST", "PUT") else None
                async with sem:
                    try:
                        res = await c.request(method, base + path, headers=headers, content=body)
                    except httpx.HTTPError:
                        return  # refused/closed by the listener: not a 5xx
                if res.status_code >= 500:
                    five.append((method, path, res.status_code))

            await asyncio.gather(*(one(i) for i in range(N)))
        assert not five, five[:20]
