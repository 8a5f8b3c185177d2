"""Finding 4 in-process (fast): revocations are in the store — a second service on the same database
refuses them, a purge keeps them exactly as long as LiveKit would accept their tokens, and the
gateway's check stays cheap (cached; forged or expired tokens never reach the database)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from linkpronto.keys import load_or_create
from linkpronto.links import retention
from linkpronto.links.revocations import CLEAR_TTL_S
from linkpronto.links.service import LinkService, Proof
from linkpronto.links.store import LinkStore, sqlite_url
from linkpronto.livekit import tokens
from linkpronto.web.rtc_guard import RevokedRoomGuard

KEY, SECRET = "APIrevoke", "r" * 40
NOW = datetime.now(UTC).replace(microsecond=0)


def _service(tmp_path: Path, clock: list[datetime]) -> LinkService:
    store = LinkStore(sqlite_url(tmp_path))
    return LinkService(store, load_or_create(tmp_path), link_path="/c/{token}", default_ttl_s=3600,
                       default_max_uses=0, join_token_ttl_s=60, public_base=lambda: "https://x.example",
                       credentials=lambda: None, clock=lambda: clock[0])


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[LinkService, LinkService, list[datetime]]]:
    """Two services on one database file: two instances, or one before and after a restart."""
    clock = [NOW]
    a, b = _service(tmp_path, clock), _service(tmp_path, clock)
    yield a, b, clock
    a.store.close()
    b.store.close()


class Upstream:
    def __init__(self) -> None:
        self.reached = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.reached += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def test_a_revocation_is_seen_by_another_service_on_the_same_store(pair: Any) -> None:
    a, b, clock = pair
    row, _ = a.create(professional_id="dra", proven=Proof(NOW, "https://x.example", "[]"))
    assert not await b.room_revoked(row.room)
    await a.revoke(row.id)
    assert await a.room_revoked(row.room)  # the revoker: from memory
    clock[0] = NOW + timedelta(seconds=CLEAR_TTL_S + 0.5)  # ...b's "not revoked" answer has aged out
    b.revocations.monotonic = lambda: 1e9
    assert await b.room_revoked(row.room)
    assert b.store.revoked_until(row.room, clock[0]) == NOW + timedelta(seconds=60 + tokens.LIVEKIT_LEEWAY_S)


async def test_revocation_rows_live_as_long_as_the_tokens_they_refuse(pair: Any) -> None:
    a, b, _ = pair
    row, _ = a.create(professional_id="dra", proven=Proof(NOW, "https://x.example", "[]"))
    await a.revoke(row.id)
    await a.revoke(row.id)  # idempotent: the first revocation's row is kept
    # A purge that deletes the link itself (retention 0) keeps the revocation until it expires.
    assert retention.purge(a.store, 0, NOW + timedelta(seconds=1)) == 1
    assert a.store.get(row.id) is None
    assert b.store.active_revocations(NOW + timedelta(seconds=1)) == {row.room: NOW + timedelta(seconds=120)}
    assert await b.room_revoked(row.room)
    retention.purge(a.store, 0, NOW + timedelta(seconds=121))
    assert b.store.active_revocations(NOW) == {}


async def test_the_check_is_cached_and_junk_never_reaches_the_store(pair: Any) -> None:
    a, _, _ = pair
    row, _ = a.create(professional_id="dra", proven=Proof(NOW, "https://x.example", "[]"))
    upstream = Upstream()
    guard = RevokedRoomGuard(upstream, a.room_revoked, lambda: (KEY, SECRET))
    good = tokens.join_token(KEY, SECRET, room=row.room, identity="p-1", name=None, ttl=timedelta(minutes=1))
    forged = tokens.join_token(KEY, "x" * 40, room="consulta-forged", identity="p-1", name=None,
                               ttl=timedelta(minutes=1))
    old = jwt.decode(good, options={"verify_signature": False})
    expired = jwt.encode({**old, "nbf": old["nbf"] - 400, "exp": old["exp"] - 200}, SECRET, algorithm="HS256")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://gw") as c:
        for _ in range(20):
            assert (await c.get("/rtc/validate", params={"access_token": good})).status_code == 200
        assert a.revocations.queries == 1  # one query per room and CLEAR_TTL_S, however many reconnects
        for token in (forged, expired, "not-a-jwt"):
            assert (await c.get("/rtc/validate", params={"access_token": token})).status_code == 200
        assert a.revocations.queries == 1  # LiveKit refuses those itself: no database work for junk
        await a.revoke(row.id)
        for _ in range(5):
            assert (await c.get("/rtc/validate", params={"access_token": good})).status_code == 401
        assert a.revocations.queries == 1
    assert upstream.reached == 23
