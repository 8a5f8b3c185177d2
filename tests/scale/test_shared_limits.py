"""The failed-join limit over a real Redis: exact across two linkpronto instances.

Two orchestrators run in-process with ``server.rate_limit_storage`` pointing at one redis-server
started by the test session; failed joins sent alternately to each count in the same window.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from doubles.livekit_server import RunningDouble
from fixtures.redisserver import RedisServer
from helpers.lp import run_lp, settings_for
from linkpronto.errors import ConfigInvalid
from linkpronto.limits_storage import storage_for
from scale import routes

pytestmark = pytest.mark.slow


async def test_failed_join_limit_counts_across_two_instances(
    tmp_path: Path, livekit_double: RunningDouble, redis_server: RedisServer
) -> None:
    redis_server.flush()
    server = {"rate_limit_storage": redis_server.url, "join_failures_per_minute": 6}
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            run_lp(settings_for(tmp_path / "a", livekit_url=livekit_double.url, server=dict(server)))
        )
        b = await stack.enter_async_context(
            run_lp(settings_for(tmp_path / "b", livekit_url=livekit_double.url, server=dict(server)))
        )
        join_path = routes.JOIN
        codes = []
        for i in range(8):
            client = (a, b)[i % 2].public
            res = await client.post(join_path, json={"token": f"guess{i:030d}"})
            codes.append(res.status_code)
        # Six failures in all (three on each instance) use the shared budget; then both refuse.
        assert codes[:6] == [404] * 6 and codes[6:] == [429, 429], codes
        res = await a.public.post(join_path, json={"token": "guess"})
        assert res.status_code == 429 and res.json()["error"]["code"] == "RATE_LIMITED"


def test_storage_urls_are_checked(redis_server: RedisServer) -> None:
    assert storage_for("memory://") is not None
    assert storage_for(redis_server.url).check()
    with pytest.raises(ConfigInvalid) as bad:
        storage_for("mongodb://x")
    assert bad.value.code == "CONFIG_INVALID" and "redis://" in (bad.value.fix("en") or "")
    from helpers.net import free_port

    with pytest.raises(ConfigInvalid) as down:
        storage_for(f"redis://:hunter2@127.0.0.1:{free_port()}")
    assert "hunter2" not in down.value.message("en") and "did not answer" in down.value.message("en")
