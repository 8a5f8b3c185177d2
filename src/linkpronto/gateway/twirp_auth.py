"""LiveKit's RoomService through the public gateway, authenticated the way LiveKit authenticates it.

A supervised app's ``LIVEKIT_URL`` is the public ``wss://<public>/_linkpronto/livekit`` (LiveKit's own
convention: the URL clients connect to), so a server SDK built with it (``RoomServiceClient``,
``LiveKitAPI``) posts to ``https://<public>/_linkpronto/livekit/twirp/livekit.RoomService/<Method>``.
LiveKit Cloud and every self-hosted LiveKit expose that API publicly, protected by an API-key JWT; this
gateway does the same, but checks the JWT itself before one byte reaches LiveKit:

* the method is ``POST`` and the path is exactly ``/twirp/livekit.RoomService/<Method>`` for a method
  in :data:`GRANT_FOR` (nothing else of ``/twirp`` — Egress, Ingress, SIP, AgentDispatch — and never
  ``/debug``);
* ``Authorization: Bearer <JWT>``, HS256 only, signed with this stack's LiveKit secret, ``iss`` = this
  stack's API key, ``exp`` present and not passed, ``nbf`` not in the future;
* its ``video`` grant carries the grant LiveKit itself requires for that method (``roomCreate`` for
  CreateRoom/DeleteRoom, ``roomList`` for ListRooms, ``roomAdmin`` for the per-room methods).

Anything else is refused exactly as before (404, LiveKit never contacted). LiveKit then checks the
same token again (and, for ``roomAdmin``, that it names the room).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable

import jwt
from starlette.types import Scope

log = logging.getLogger("linkpronto.gateway")

PREFIX = "/twirp/livekit.RoomService/"
MAX_TOKEN = 8192

#: RoomService method → the grant LiveKit requires for it (livekit-server pkg/service/roomservice.go).
GRANT_FOR: dict[str, str] = {
    "CreateRoom": "roomCreate",
    "DeleteRoom": "roomCreate",
    "ListRooms": "roomList",
    **{m: "roomAdmin" for m in (
        "ListParticipants", "GetParticipant", "RemoveParticipant", "MutePublishedTrack",
        "UpdateParticipant", "UpdateSubscriptions", "SendData", "UpdateRoomMetadata",
        "ForwardParticipant", "MoveParticipant", "PerformRpc",
    )},
}
_METHOD = re.compile(r"[A-Za-z]{1,64}")


def room_service_method(path: str) -> str | None:
    """``ListRooms`` for ``/twirp/livekit.RoomService/ListRooms``; ``None`` for any other path."""
    if not path.startswith(PREFIX):
        return None
    method = path[len(PREFIX):]
    return method if _METHOD.fullmatch(method) and method in GRANT_FOR else None


def bearer(scope: Scope) -> str | None:
    values = [v for k, v in scope.get("headers", ()) if k == b"authorization"]
    if len(values) != 1:
        return None  # none, or ambiguous
    value = values[0].decode("latin-1")
    if value[:7].lower() != "bearer " or len(value) > MAX_TOKEN:
        return None
    return value[7:].strip() or None


def verify_admin_token(token: str, api_key: str, api_secret: str, method: str, *,
                       now: float | None = None) -> str | None:
    """``None`` when ``token`` authorises ``method``; otherwise why not (for the log, never the client)."""
    if not api_key or not api_secret:
        return "no key pair"
    grant = GRANT_FOR.get(method)
    if grant is None:
        return "not a RoomService method"
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return "malformed token"
    if header.get("alg") != "HS256":
        return "not HS256"
    try:
        claims = jwt.decode(
            token, api_secret, algorithms=["HS256"],
            options={"require": ["exp", "iss"], "verify_exp": False, "verify_nbf": False,
                     "verify_aud": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as exc:
        return f"invalid token ({type(exc).__name__})"
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not hmac.compare_digest(issuer.encode(), api_key.encode()):
        return "another API key"
    t = time.time() if now is None else now
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int | float) or exp <= t:
        return "expired"
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > t + 5):  # small clock step
        return "not yet valid"
    video = claims.get("video")
    if not isinstance(video, dict) or video.get(grant) is not True:
        return f"no {grant} grant"
    return None


def twirp_allowed(scope: Scope, key_pair: Callable[[], tuple[str, str]] | None) -> bool:
    """Whether this request may pass to LiveKit's RoomService (module docstring)."""
    if key_pair is None or scope.get("type") != "http" or scope.get("method") != "POST":
        return False
    method = room_service_method(scope.get("path", ""))
    if method is None:
        return False
    token = bearer(scope)
    if token is None:
        log.info("RoomService %s refused: no bearer token", method)
        return False
    key, secret = key_pair()
    why = verify_admin_token(token, key, secret, method)
    if why is not None:
        log.info("RoomService %s refused: %s", method, why)
        return False
    return True
