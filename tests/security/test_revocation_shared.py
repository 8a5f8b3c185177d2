"""Issue 19, finding 4: a revoked link's LiveKit token is refused through *another* ``serve``
instance sharing the PostgreSQL, and after a restart — revocations live in the store
(``link_revocations``, migration 0004), not in one process's memory.

Two real ``linkpronto serve`` processes (fixtures.cluster) on one real PostgreSQL and Redis, LiveKit
``external`` (the test double, which honours signatures and ``exp``). The browser's only way to
LiveKit is each instance's gateway: ``/_linkpronto/livekit/rtc/validate`` (HTTP) and ``/rtc``
(WebSocket, 101 when admitted).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from fixtures.cluster import Cluster
from fixtures.pgserver import PgServer
from fixtures.redisserver import RedisServer
from security.child import JOIN

pytestmark = pytest.mark.slow

VALIDATE = "/_linkpronto/livekit/rtc/validate"
RTC = "/_linkpronto/livekit/rtc"


def ws_status(base_url: str, path: str, token: str) -> int:
    """The HTTP status a WebSocket upgrade of ``path`` gets (101: LiveKit admitted it)."""
    u = urlsplit(base_url)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path}?access_token={token}&protocol=16 HTTP/1.1\r\nHost: {u.netloc}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: {key}\r\nOrigin: {base_url}\r\n\r\n").encode()
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=10) as s:
        s.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


async def _refused_within(client: httpx.AsyncClient, token: str, seconds: float) -> int:
    """/validate until it answers 401 (a revocation from another instance: within its cache bound)."""
    deadline = time.monotonic() + seconds
    while True:
        status = (await client.get(VALIDATE, params={"access_token": token})).status_code
        if status == 401 or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def test_revoked_on_one_instance_is_refused_on_the_other_and_after_a_restart(
    tmp_path: Path, livekit_double: RunningDouble, postgres_server: PgServer, redis_server: RedisServer
) -> None:
    db = postgres_server.create_database()
    redis_server.flush()
    with Cluster(2, database_url=db, redis_url=redis_server.url, livekit_url=livekit_double.url,
                 workdir=tmp_path, caddy=False) as cluster:
        s1, s2 = cluster.instances
        await asyncio.to_thread(cluster.wait_state, "ready", 60)
        async with (
            httpx.AsyncClient(base_url=s1.admin_url, headers=cluster.auth, timeout=30) as admin1,
            httpx.AsyncClient(base_url=s1.public_url, timeout=30) as pub1,
            httpx.AsyncClient(base_url=s2.public_url, timeout=30) as pub2,
        ):
            async def joined() -> tuple[str, str]:
                res = await admin1.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 30})
                assert res.status_code == 201, res.text
                link = res.json()
                grant = await pub1.post(JOIN, json={"token": str(link["url"]).rsplit("/", 1)[1]})
                assert grant.status_code == 200, grant.text
                return str(link["id"]), str(grant.json()["access_token"])

            revoked_id, revoked_jwt = await joined()
            _, other_jwt = await joined()
            # Before: both instances let the token through (LiveKit admits it).
            for pub, inst in ((pub1, s1), (pub2, s2)):
                assert (await pub.get(VALIDATE, params={"access_token": revoked_jwt})).status_code == 200
                assert await asyncio.to_thread(ws_status, inst.public_url, RTC, revoked_jwt) == 101

            assert (await admin1.delete(f"/api/consultation-links/{revoked_id}")).status_code == 200
            # s1 (the revoker) at once; s2 (which never saw the revoke) within its one-second bound.
            assert (await pub1.get(VALIDATE, params={"access_token": revoked_jwt})).status_code == 401
            assert await _refused_within(pub2, revoked_jwt, 3.0) == 401
            assert await asyncio.to_thread(ws_status, s2.public_url, RTC, revoked_jwt) == 401
            # Another link's token is untouched on both.
            assert (await pub2.get(VALIDATE, params={"access_token": other_jwt})).status_code == 200
            assert await asyncio.to_thread(ws_status, s2.public_url, RTC, other_jwt) == 101

        # A restart of both instances forgets nothing: the refusal comes from the store.
        for inst in cluster.instances:
            cluster.stop_instance(inst)
        for inst in cluster.instances:
            cluster.start_instance(inst)
        deadline = time.monotonic() + 60
        for inst in cluster.instances:
            cluster.wait_admin(inst, deadline)
        for inst in cluster.instances:
            async with httpx.AsyncClient(base_url=inst.public_url, timeout=30) as pub:
                assert (await pub.get(VALIDATE, params={"access_token": revoked_jwt})).status_code == 401
                assert (await pub.get(VALIDATE, params={"access_token": other_jwt})).status_code == 200
            assert await asyncio.to_thread(ws_status, inst.public_url, RTC, revoked_jwt) == 401
            assert await asyncio.to_thread(ws_status, inst.public_url, RTC, other_jwt) == 101
