"""Two ``linkpronto serve`` instances sharing PostgreSQL and Redis behind a real Caddy.

The topology of ``deploy/compose.yaml`` without containers (see :mod:`fixtures.cluster`): LiveKit is
the test double in ``external`` mode, PostgreSQL and Redis are real servers started by the test
session, Caddy load-balances round-robin to both instances' public listeners.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from doubles.livekit_server import RunningDouble
from fixtures.cluster import Cluster, caddy_available
from fixtures.pgserver import PgServer
from fixtures.redisserver import RedisServer
from helpers.tiers import require
from scale import routes

pytestmark = pytest.mark.slow

FAILURES_PER_MINUTE = 6
SECRETS_KEY = "cluster-secrets-key-" + "k" * 24


def _token(link: dict[str, object]) -> str:
    return str(link["url"]).rsplit("/", 1)[1]


def _deployment_secret(database_url: str) -> bytes:
    """The probe secret as stored: sealed with the deployment's secrets key (never in the clear)."""
    from linkpronto.deployment import SEALED, _sealer

    engine = create_engine(database_url)
    with engine.connect() as conn:
        value = str(conn.execute(text("SELECT value FROM linkpronto_secrets WHERE name = 'instance_secret'")).scalar())
    engine.dispose()
    assert value.startswith(SEALED)
    sealer = _sealer(SECRETS_KEY)
    assert sealer is not None
    return bytes.fromhex(sealer.decrypt(value[len(SEALED) :].encode()).decode())


async def test_two_instances_behind_caddy(
    tmp_path: Path, livekit_double: RunningDouble, postgres_server: PgServer, redis_server: RedisServer
) -> None:
    require(caddy_available(), "caddy (Debian: caddy)")
    db = postgres_server.create_database()
    redis_server.flush()
    env = {
        "LINKPRONTO_SERVER_JOIN_FAILURES_PER_MINUTE": str(FAILURES_PER_MINUTE),
        "LINKPRONTO_SERVER_SECRETS_KEY": SECRETS_KEY,
    }
    with Cluster(
        2, database_url=db, redis_url=redis_server.url, livekit_url=livekit_double.url, workdir=tmp_path, env=env
    ) as cluster:
        a, b = cluster.instances
        auth = cluster.auth
        async with (
            httpx.AsyncClient(base_url=a.admin_url, headers=auth, timeout=30) as admin_a,
            httpx.AsyncClient(base_url=b.admin_url, headers=auth, timeout=30) as admin_b,
            httpx.AsyncClient(base_url=cluster.url, timeout=30) as edge,
            httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as direct,
        ):
            # 1. The verification ladder passes through Caddy on both instances, whichever answers:
            #    both prove the same deployment (one secret, shared through PostgreSQL).
            docs = await asyncio.to_thread(cluster.wait_state, "ready", 60)
            for doc in docs:
                checks = {c["name"]: c["ok"] for c in doc["verification"]["checks"]}  # type: ignore[index]
                assert checks["public_probe"] and checks["link_route"], checks
                assert doc["components"]["store"]["state"] == "ready"  # type: ignore[index]
            secret = _deployment_secret(db)
            answered = set()
            for i in range(6):
                res = await edge.get(routes.PROBE, params={"nonce": f"n{i}"})
                body = res.json()
                assert body["mac"] == hmac.new(secret, f"n{i}".encode(), hashlib.sha256).hexdigest()
                answered.add((res.headers["x-upstream"], body["instance"]))
            assert {u for u, _ in answered} == {a.upstream, b.upstream}
            assert len({i for _, i in answered}) == 1  # one deployment id, whichever instance answered

            # 2. A link created through one instance joins through the other (and through Caddy).
            res = await admin_a.post("/api/consultation-links", json={"professional_id": "dra-ana"})
            assert res.status_code == 201, res.text
            link = res.json()
            assert str(link["url"]).startswith(cluster.url + "/")
            token = _token(link)
            res = await direct.post(b.public_url + routes.JOIN, json={"token": token})
            assert res.status_code == 200, res.text
            assert (await edge.post(routes.JOIN, json={"token": token})).status_code == 200
            seen_by_b = (await admin_b.get(f"/api/consultation-links/{link['id']}")).json()
            assert seen_by_b["uses"] == 2 and seen_by_b["url"] == link["url"]

            # 3. 50 concurrent joins of a max_uses=1 link, split across both → exactly one 200.
            res = await admin_b.post("/api/consultation-links", json={"professional_id": "p", "max_uses": 1})
            once = res.json()
            once_token = _token(once)
            targets = [a.public_url, b.public_url] * 25
            results = await asyncio.gather(
                *(
                    direct.post(
                        base + routes.JOIN,
                        json={"token": once_token},
                        headers={"X-Forwarded-For": f"198.51.100.{i}"},  # 50 distinct patients
                    )
                    for i, base in enumerate(targets)
                )
            )
            codes = sorted(r.status_code for r in results)
            assert codes.count(200) == 1 and codes.count(410) == 49, codes
            assert (await admin_a.get(f"/api/consultation-links/{once['id']}")).json()["uses"] == 1

            # 4. The failed-join limit counts across both instances (Redis).
            redis_server.flush()
            guesses = []
            for i in range(FAILURES_PER_MINUTE + 2):
                base = (a, b)[i % 2].public_url
                res = await direct.post(
                    base + routes.JOIN,
                    json={"token": f"guess{i:030d}"},
                    headers={"X-Forwarded-For": "203.0.113.9"},
                )
                guesses.append(res.status_code)
            assert guesses[:FAILURES_PER_MINUTE] == [404] * FAILURES_PER_MINUTE, guesses
            assert guesses[FAILURES_PER_MINUTE:] == [429, 429], guesses
            redis_server.flush()

            # 5. PostgreSQL restarted mid-run: errors with a code, then recovery with nothing lost.
            before = {i["id"] for i in (await admin_a.get("/api/consultation-links")).json()["items"]}
            postgres_server.stop()
            try:
                res = await edge.post(routes.JOIN, json={"token": token})
                assert res.status_code == 503, res.text
                assert res.json()["error"]["code"] == "STORE_UNAVAILABLE" and res.json()["error"]["fix"]
                # Anonymous callers learn nothing of the infrastructure (issue 19 finding 13).
                public_text = res.text.lower()
                for secret_part in ("postgres", "psycopg", str(postgres_server.port), "127.0.0.1", "operational"):
                    assert secret_part not in public_text, res.text
                res = await admin_a.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 0})
                assert res.status_code == 503 and res.json()["error"]["code"] == "STORE_UNAVAILABLE", res.text
                deadline = time.monotonic() + 20
                while True:
                    doc = (await admin_b.get("/api/status")).json()
                    if doc["components"]["store"]["state"] == "unhealthy" and doc["state"] == "degraded":
                        break
                    assert time.monotonic() < deadline, doc
                    await asyncio.sleep(0.2)
                assert any(p["code"] == "STORE_UNAVAILABLE" for p in doc["problems"]), doc["problems"]
            finally:
                postgres_server.start()
            # Reconnects by itself: no restart of either instance.
            deadline = time.monotonic() + 30
            while True:
                res = await edge.post(routes.JOIN, json={"token": token})
                if res.status_code == 200:
                    break
                assert res.status_code == 503 and time.monotonic() < deadline, res.text
                await asyncio.sleep(0.2)
            await asyncio.to_thread(cluster.wait_state, "ready", 30)
            after = {i["id"] for i in (await admin_b.get("/api/consultation-links")).json()["items"]}
            assert before <= after and {link["id"], once["id"]} <= after
            res = await admin_b.post("/api/consultation-links", json={"professional_id": "dra-ana"})
            assert res.status_code == 201, res.text
            assert (await direct.post(a.public_url + routes.JOIN, json={"token": _token(res.json())})).status_code == 200
            final = (await admin_a.get(f"/api/consultation-links/{link['id']}")).json()
            assert final["uses"] == 3  # the two joins before the outage and the one after it
