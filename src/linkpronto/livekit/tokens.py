"""LiveKit access tokens, built with ``livekit-api``'s ``AccessToken``.

Three kinds: a patient's join token (one room, publish/subscribe, short TTL, opaque identity), the
professional's host token (the same room, plus room admin for that room), and a probe token used only
to ask LiveKit's ``/rtc/validate`` whether it accepts tokens signed with our key pair.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from livekit.api import AccessToken, VideoGrants

PROBE_ROOM = "linkpronto-probe"
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
    grants = VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    token = AccessToken(api_key, api_secret).with_identity(identity).with_ttl(ttl).with_grants(grants)
    if name:
        token = token.with_name(name)
    return token.to_jwt()


def host_token(api_key: str, api_secret: str, *, room: str, identity: str, name: str | None) -> str:
    grants = VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True, room_admin=True)
    token = AccessToken(api_key, api_secret).with_identity(identity).with_ttl(HOST_TTL).with_grants(grants)
    if name:
        token = token.with_name(name)
    return token.to_jwt()


def probe_token(api_key: str, api_secret: str) -> str:
    """A token LiveKit's ``/rtc/validate`` accepts only if it was signed with this key pair."""
    grants = VideoGrants(room_join=True, room=PROBE_ROOM, can_publish=False, can_subscribe=False)
    return (
        AccessToken(api_key, api_secret)
        .with_identity(opaque_identity("probe"))
        .with_ttl(PROBE_TTL)
        .with_grants(grants)
        .to_jwt()
    )
