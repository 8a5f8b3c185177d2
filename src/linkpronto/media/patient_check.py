"""The patient's real WebRTC check before joining (patient.js), server side.

``POST /_linkpronto/api/media-check-token {token}`` → ``{url, room, token, seconds}``: for a live link
only, a token for a fresh probe room (``linkpronto-probe-pc-<hex>``) whose holder may publish — never
subscribe, never see anyone — as a hidden ``lp-probe-patient-…`` participant, valid one minute. It is
not a use of the link and its room never counts as anyone in a room (media.is_probe). The page
publishes camera and microphone there for a few seconds, reads ``getStats()`` and reports the result
inside the device check (links/inputs.py ``MediaCheckReport``).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from linkpronto.media import PROBE_IDENTITY_PREFIX, PROBE_PREFIX

CHECK_TTL = timedelta(seconds=60)
CHECK_SECONDS = 4  # how long the page publishes


def media_check_grant(api_key: str, api_secret: str, livekit_url: str) -> dict[str, Any]:
    from livekit.api import AccessToken, VideoGrants

    room = f"{PROBE_PREFIX}-pc-{secrets.token_hex(6)}"
    identity = f"{PROBE_IDENTITY_PREFIX}patient-{secrets.token_hex(4)}"
    grants = VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=False,
                         can_publish_data=False, hidden=True)
    token = (AccessToken(api_key, api_secret).with_identity(identity).with_ttl(CHECK_TTL).with_grants(grants)
             .with_attributes({"linkpronto.role": "probe"}).to_jwt())
    return {"url": livekit_url, "room": room, "token": token, "seconds": CHECK_SECONDS}
