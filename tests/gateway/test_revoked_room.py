"""The gateway refuses a revoked link's join tokens at once (fast: the guard and the link service,
in-process; the end-to-end version with LiveKit is tests/security/test_inputs_and_joins.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkpronto.keys import load_or_create
from linkpronto.links.service import LinkService, Proof
from linkpronto.links.store import LinkStore, sqlite_url
from linkpronto.livekit import tokens
from linkpronto.web.rtc_guard import RevokedRoomGuard

KEY, SECRET = "APIgateway", "g" * 40
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Upstream:
    """Stands in for the LiveKit proxy behind the guard: records what got through."""

    def __init__(self) -> None:
        self.reached: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.reached.append(scope["type"] + " " + scope["path"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            await send({"type": "websocket.accept"})


@pytest.fixture
def service(tmp_path: Path) -> Any:
    store = LinkStore(sqlite_url(tmp_path))
    clock = [NOW]
    svc = LinkService(store, load_or_create(tmp_path), link_path="/c/{token}", default_ttl_s=3600,
                      default_max_uses=0, join_token_ttl_s=60, public_base=lambda: "https://x.example",
                      credentials=lambda: None, clock=lambda: clock[0])
    svc.test_clock = clock  # type: ignore[attr-defined]
    yield svc
    store.close()


def _token(room: str) -> str:
    return tokens.join_token(KEY, SECRET, room=room, identity="p-1", name="Maria", ttl=timedelta(minutes=1))


async def _ws(app: Any, query: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/rtc", "query_string": query.encode(), "headers": []}
    await app(scope, receive, send)
    return sent


async def test_a_revoked_room_s_token_is_refused_and_others_pass(service: Any) -> None:
    revoked_row, _ = service.create(professional_id="dra-ana", proven=Proof(NOW, "https://x.example", "[]"))
    other_row, _ = service.create(professional_id="dra-ana", proven=Proof(NOW, "https://x.example", "[]"))
    upstream = Upstream()
    guard = RevokedRoomGuard(upstream, service.room_revoked)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://gw") as c:
        before = await c.get("/rtc/validate", params={"access_token": _token(revoked_row.room)})
        assert before.status_code == 200
        await service.revoke(revoked_row.id)
        refused = await c.get("/rtc/validate", params={"access_token": _token(revoked_row.room)})
        assert refused.status_code == 401 and refused.text == "link revoked"
        bearer = await c.get("/rtc/validate", headers={"Authorization": "Bearer " + _token(revoked_row.room)})
        assert bearer.status_code == 401
        assert (await c.get("/rtc/validate", params={"access_token": _token(other_row.room)})).status_code == 200
    assert upstream.reached == ["http /rtc/validate", "http /rtc/validate"]  # the refused ones never got there

    # The WebSocket (how a browser really joins) is refused before any upgrade.
    sent = await _ws(guard, "access_token=" + _token(revoked_row.room))
    assert sent[0] == {"type": "websocket.http.response.start", "status": 401, "headers": []}
    assert upstream.reached[-1] == "http /rtc/validate"
    assert (await _ws(guard, "access_token=" + _token(other_row.room)))[0]["type"] == "websocket.accept"


async def test_the_refusal_ends_when_livekit_would_refuse_the_token_itself(service: Any) -> None:
    row, _ = service.create(professional_id="dra-ana", proven=Proof(NOW, "https://x.example", "[]"))
    await service.revoke(row.id)
    assert await service.room_revoked(row.room)
    service.test_clock[0] = NOW + timedelta(hours=1)  # past join_token_ttl + LiveKit's leeway
    assert not await service.room_revoked(row.room)


async def test_garbage_tokens_are_left_to_livekit() -> None:
    async def every_room_revoked(room: str) -> bool:
        return True

    upstream = Upstream()
    guard = RevokedRoomGuard(upstream, every_room_revoked)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://gw") as c:
        assert (await c.get("/rtc/validate", params={"access_token": "not-a-jwt"})).status_code == 200
        assert (await c.get("/rtc/validate")).status_code == 200
