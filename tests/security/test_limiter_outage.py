"""Issue 19 findings 9 and 10 replayed: Redis (the failed-join limiter's storage) down under a running
orchestrator, and a full disk for the device check — each answers with a code, never 500."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from doubles.livekit_server import RunningDouble
from fixtures.redisserver import RedisServer, redis_available
from helpers.lp import run_lp, settings_for
from helpers.tiers import require
from linkpronto import paths
from linkpronto.web.limiter import FailedJoinLimiter


class _DownStorage(Exception):
    pass


class _Flaky:
    """A limits strategy whose storage is down until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False
        self.hits = 0

    def hit(self, *_: Any) -> bool:
        if not self.up:
            raise _DownStorage("connection refused")
        self.hits += 1
        return self.hits <= 2

    def test(self, *_: Any) -> bool:
        if not self.up:
            raise _DownStorage("connection refused")
        return self.hits < 2


def test_limiter_lets_guesses_through_uncounted_while_its_storage_is_down_and_says_so() -> None:
    limiter = FailedJoinLimiter("memory://", 2)
    flaky = _Flaky()
    limiter.limiter = flaky  # type: ignore[assignment]
    assert limiter.fail("198.18.1.3") is True and limiter.fail("198.18.1.3") is True
    assert not limiter.blocked("198.18.1.3")
    problem = limiter.problem()
    assert problem is not None and problem.code == "LIMITER_UNAVAILABLE" and problem.fix()
    flaky.up = True
    assert limiter.fail("198.18.1.3") is True and limiter.problem() is None  # counting again
    assert limiter.fail("198.18.1.3") is True and limiter.fail("198.18.1.3") is False


@pytest.mark.slow
async def test_redis_down_unknown_tokens_get_their_404_and_the_status_lists_it(
    tmp_path: Any, livekit_double: RunningDouble
) -> None:
    require(redis_available(), "redis-server")
    redis = RedisServer().start()
    try:
        server = {"rate_limit_storage": redis.url, "join_failures_per_minute": 6}
        async with run_lp(settings_for(tmp_path / "a", livekit_url=livekit_double.url, server=server)) as lp:
            await lp.wait_state("ready")
            link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "dra"})).json()
            token = link["url"].rsplit("/", 1)[1]
            redis.close()
            unknown = "x" * 30 + "0"
            join = await lp.public.post(paths.JOIN, json={"token": unknown})
            page = await lp.public.get(paths.PATIENT_PAGE.replace("{token}", unknown))
            check = await lp.public.post(paths.DEVICE_CHECK, json={"token": unknown, "result": {"ok": True}})
            assert (join.status_code, page.status_code, check.status_code) == (404, 404, 404), (join.text, check.text)
            assert join.json()["error"]["code"] == "LINK_NOT_FOUND"
            live = await lp.public.post(paths.JOIN, json={"token": token})
            assert live.status_code == 200, live.text  # a valid link never depends on the limiter
            for _ in range(50):
                problems = (await lp.admin.get("/api/status")).json()["problems"]
                if any(p["code"] == "LIMITER_UNAVAILABLE" for p in problems):
                    break
                await asyncio.sleep(0.1)
            assert any(p["code"] == "LIMITER_UNAVAILABLE" and p["fix"] for p in problems), problems
    finally:
        redis.close()
