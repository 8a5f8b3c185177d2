"""Issue 19, finding 6: with PostgreSQL down under a running ``serve``, ``/api/status`` tells the truth
every time — degraded with ``STORE_UNAVAILABLE``, the store part unhealthy — while creates and joins
answer 503, with no flapping back to ready; once PostgreSQL is back, ready again by itself.

A real ``linkpronto serve`` (fixtures.cluster, one instance) on a real PostgreSQL that the test stops.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from fixtures.cluster import Cluster
from fixtures.pgserver import PgServer
from fixtures.redisserver import RedisServer
from security.child import JOIN

pytestmark = pytest.mark.slow

POLLS = 16


def _store_truth(doc: dict[str, object]) -> tuple[object, object, bool]:
    store = doc["components"]["store"]  # type: ignore[index]
    codes = {p["code"] for p in doc["problems"]}  # type: ignore[attr-defined]
    return doc["state"], store["state"], "STORE_UNAVAILABLE" in codes  # type: ignore[index]


async def test_postgres_down_status_says_so_every_poll_then_recovers(
    tmp_path: Path, livekit_double: RunningDouble, postgres_server: PgServer, redis_server: RedisServer
) -> None:
    db = postgres_server.create_database()
    redis_server.flush()
    with Cluster(1, database_url=db, redis_url=redis_server.url, livekit_url=livekit_double.url,
                 workdir=tmp_path, caddy=False) as cluster:
        (s1,) = cluster.instances
        await asyncio.to_thread(cluster.wait_state, "ready", 60)
        async with (
            httpx.AsyncClient(base_url=s1.admin_url, headers=cluster.auth, timeout=30) as admin,
            httpx.AsyncClient(base_url=s1.public_url, timeout=30) as pub,
        ):
            res = await admin.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 30})
            assert res.status_code == 201, res.text
            token = str(res.json()["url"]).rsplit("/", 1)[1]
            postgres_server.stop()
            try:
                create = await admin.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 0})
                assert create.status_code == 503 and create.json()["error"]["code"] == "STORE_UNAVAILABLE"
                seen = []
                for i in range(POLLS):
                    seen.append(_store_truth((await admin.get("/api/status")).json()))
                    if i % 4 == 0:  # creates and joins keep failing meanwhile
                        assert (await pub.post(JOIN, json={"token": token})).status_code == 503
                    await asyncio.sleep(0.5)
                assert seen == [("degraded", "unhealthy", True)] * POLLS, seen
            finally:
                postgres_server.start()
            deadline = time.monotonic() + 30
            while True:
                state = _store_truth((await admin.get("/api/status")).json())
                if state == ("ready", "ready", False):
                    break
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.3)
            assert (await pub.post(JOIN, json={"token": token})).status_code == 200
