"""In front of the LiveKit gateway: a revoked link's join tokens are refused at once.

LiveKit accepts a token until its ``exp`` plus one minute of leeway; RoomService removes the people
in the room, but a removed patient could reconnect with the same token. Every browser reaches
LiveKit through this gateway (``/_linkpronto/livekit/...``) in ``local`` and ``external`` modes, so
refusing here a token whose room belongs to a revoked link closes that window: revoked means
"cannot connect" within a second, not within ``join_token_ttl`` + 60 s. Revocations live in the
store (links.revocations): one instance's revoke is refused by every instance, and after a restart.

With the stack's key pair the guard only asks about tokens signed with it and not yet past LiveKit's
own expiry: a forged or expired token is LiveKit's to refuse, so junk never costs a database query.
Without it (tests) the token is read unverified — only ever to *refuse*.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import jwt
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from linkpronto.livekit.tokens import LIVEKIT_LEEWAY_S


def _token(scope: Scope) -> str:
    token = ""
    auth = Headers(scope=scope).get("authorization", "")
    if auth[:7].lower() == "bearer ":
        token = auth[7:].strip()
    if not token:
        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (qs.get("access_token") or [""])[0]
    return token


def token_room(scope: Scope, key_pair: Callable[[], tuple[str, str]] | None = None) -> str | None:
    """The room a token joins; with ``key_pair``, only for a token signed with it and still alive."""
    token = _token(scope)
    if not token:
        return None
    try:
        if key_pair is None:
            claims = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
        else:
            claims = jwt.decode(token, key_pair()[1], algorithms=["HS256"], leeway=LIVEKIT_LEEWAY_S,
                                options={"verify_aud": False, "verify_iat": False})
    except jwt.InvalidTokenError:
        return None
    if key_pair is not None and not isinstance(claims.get("exp"), int | float):
        return None
    video = claims.get("video")
    room = video.get("room") if isinstance(video, dict) else None
    return room if isinstance(room, str) else None


class RevokedRoomGuard:
    def __init__(self, app: ASGIApp, room_revoked: Callable[[str], Awaitable[bool]],
                 key_pair: Callable[[], tuple[str, str]] | None = None) -> None:
        self.app = app
        self.room_revoked = room_revoked
        self.key_pair = key_pair
        #: Seconds spent deciding, and how many decisions (bench/edge.py reads the mean).
        self.spent_s = 0.0
        self.checks = 0

    async def _revoked(self, scope: Scope) -> bool:
        started = time.perf_counter()
        room = token_room(scope, self.key_pair)
        revoked = False
        if room is not None:
            revoked = await self.room_revoked(room)
        self.spent_s += time.perf_counter() - started
        self.checks += 1
        return revoked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and await self._revoked(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
                await send({"type": "websocket.http.response.body", "body": b"link revoked"})
            else:
                await PlainTextResponse("link revoked", status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)
