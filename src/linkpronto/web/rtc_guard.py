"""In front of the LiveKit gateway: a revoked link's join tokens are refused at once.

LiveKit accepts a token until its ``exp`` plus one minute of leeway; RoomService removes the people
in the room, but a removed patient could reconnect with the same token. Every browser reaches
LiveKit through this gateway (``/_linkpronto/livekit/...``) in ``local`` and ``external`` modes, so
refusing here a token whose room belongs to a link revoked while running closes that window:
revoked means "cannot connect" within a second, not within ``join_token_ttl`` + 60 s.

The token is read without verifying its signature on purpose: it is only ever used to *refuse*
(a forged token naming a revoked room is refused — and LiveKit would refuse it anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

import jwt
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def token_room(scope: Scope) -> str | None:
    token = ""
    auth = Headers(scope=scope).get("authorization", "")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
    if not token:
        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (qs.get("access_token") or [""])[0]
    if not token:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.InvalidTokenError:
        return None
    video = claims.get("video")
    room = video.get("room") if isinstance(video, dict) else None
    return room if isinstance(room, str) else None


class RevokedRoomGuard:
    def __init__(self, app: ASGIApp, room_revoked: Callable[[str], bool]) -> None:
        self.app = app
        self.room_revoked = room_revoked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            room = token_room(scope)
            if room is not None and self.room_revoked(room):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
                    await send({"type": "websocket.http.response.body", "body": b"link revoked"})
                else:
                    await PlainTextResponse("link revoked", status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)
