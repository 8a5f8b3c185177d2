"""LiveKit access tokens.

Three kinds: a patient's join token (one room, publish/subscribe, short TTL, opaque identity), the
professional's host token (the same room, plus room admin for that room), and a probe token used only
to ask LiveKit's ``/rtc/validate`` whether it accepts tokens signed with our key pair.

Join and host tokens are built with ``livekit-api``'s ``AccessToken`` (imported when first needed:
``livekit.api`` loads aiohttp, which nothing on the way to ``ready`` needs). The probe token, which
every ladder run needs from the first one on, is the same JWT (HS256, the claims ``AccessToken``
writes) signed here with the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta

PROBE_ROOM = "linkpronto-probe"
ROLE_ATTRIBUTE = "linkpronto.role"  # read back from webhooks by linkpronto.events.webhook.role_of
PROBE_TTL = timedelta(seconds=60)
HOST_TTL = timedelta(hours=4)
#: livekit-server validates token times with go-jose's default leeway (one minute).
LIVEKIT_LEEWAY_S = 60.0


def opaque_identity(prefix: str) -> str:
    """An identity with no personal data: ``p-4f9c…`` (patient) or ``h-…`` (host)."""
    return f"{prefix}-{secrets.token_hex(8)}"


def join_token(
    api_key: str,
    api_secret: str,
    *,
    room: str,
    identity: str,
    name: str | None,
    ttl: timedelta,
) -> str:
    from livekit.api import AccessToken, VideoGrants

    grants = VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    token = AccessToken(api_key, api_secret).with_identity(identity).with_ttl(ttl).with_grants(grants)
    token = token.with_attributes({ROLE_ATTRIBUTE: "patient"})  # presence tells patient from professional
    if name:
        token = token.with_name(name)
    return token.to_jwt()


def host_token(api_key: str, api_secret: str, *, room: str, identity: str, name: str | None) -> str:
    from livekit.api import AccessToken, VideoGrants

    grants = VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, room_admin=True)
    token = AccessToken(api_key, api_secret).with_identity(identity).with_ttl(HOST_TTL).with_grants(grants)
    token = token.with_attributes({ROLE_ATTRIBUTE: "professional"})
    if name:
        token = token.with_name(name)
    return token.to_jwt()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hs256(claims: dict[str, object], secret: str) -> str:
    """A compact JWS (HS256) of ``claims``, as ``AccessToken.to_jwt`` writes it."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def probe_token(api_key: str, api_secret: str) -> str:
    """A token LiveKit's ``/rtc/validate`` accepts only if it was signed with this key pair."""
    now = int(time.time())
    claims: dict[str, object] = {
        "video": {"roomJoin": True, "room": PROBE_ROOM, "canPublish": False, "canSubscribe": False,
                  "canPublishData": True},
        "sub": opaque_identity("probe"),
        "iss": api_key,
        "nbf": now,
        "exp": now + int(PROBE_TTL.total_seconds()),
    }
    return hs256(claims, api_secret)
