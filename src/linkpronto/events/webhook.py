"""LiveKit webhooks in: verification and parsing.

LiveKit POSTs a JSON ``WebhookEvent`` (``Content-Type: application/webhook+json``) with an
``Authorization`` header holding a JWT signed (HS256) with the API secret of the configured
``webhook.api_key``; the token's ``sha256`` claim is the base64 SHA-256 of the exact body. The check is
``livekit-api``'s :class:`~livekit.api.WebhookReceiver` (signature, issuer = our API key, ``exp``
required, then the body hash); nothing here re-implements JWT handling.

A request that fails any of it is :class:`WebhookRejected` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from livekit.api import TokenVerifier, WebhookReceiver
from livekit.protocol import models
from livekit.protocol.webhook import WebhookEvent

from linkpronto.errors import (
    WebhookRejected as WebhookRejected,  # re-exported: it lives in the one error tree
)

#: Admin listener path (loopback: local LiveKit posts here; exempt from the admin token, signed instead).
ADMIN_PATH = "/api/livekit/webhook"
MAX_BODY_BYTES = 256 * 1024
#: LiveKit signs webhooks with tokens valid for 5 minutes; allow the same clock skew as the SDK default.
LEEWAY = timedelta(seconds=10)
ROLE_ATTRIBUTE = "linkpronto.role"
PATIENT, PROFESSIONAL = "patient", "professional"
#: Recorders, streams in, AI agents and bridges are not people in the consultation: they move nothing.
OTHER = "other"
_NOT_PEOPLE = frozenset({"INGRESS", "EGRESS", "AGENT", "CONNECTOR", "BRIDGE"})
#: Only these move presence; others (track_*, egress_*) are accepted and ignored.
HANDLED = frozenset({"participant_joined", "participant_left", "participant_connection_aborted",
                     "room_started", "room_finished"})

#: The sentence and fix a refused webhook answers with (the error class carries them).
REJECTED = WebhookRejected.default_message
REJECTED_FIX = WebhookRejected.default_fix


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """What presence needs of a WebhookEvent."""

    id: str
    kind: str
    room: str
    room_sid: str
    created_at: int  # UNIX seconds (LiveKit's createdAt)
    participant_sid: str = ""
    identity: str = ""
    name: str = ""
    role: str = ""

    @property
    def handled(self) -> bool:
        return self.kind in HANDLED


def role_of(identity: str, attributes: dict[str, str] | None = None) -> str:
    """``patient`` or ``professional``.

    linkpronto mints both kinds of token (links/service.py): patients get an opaque ``p-<hex>``
    identity and the attribute ``linkpronto.role=patient``; professionals ``h-<hex>`` and
    ``professional``. The attribute wins; without it the identity prefix decides; anyone else (an app
    that mints its own professional tokens) is the professional.
    """
    attr = (attributes or {}).get(ROLE_ATTRIBUTE)
    if attr in (PATIENT, PROFESSIONAL):
        return attr
    return PATIENT if identity.startswith("p-") else PROFESSIONAL


def _role(participant: models.ParticipantInfo) -> str:
    kind = models.ParticipantInfo.Kind.Name(participant.kind) if participant.kind in _KINDS else "STANDARD"
    if kind in _NOT_PEOPLE:
        return OTHER
    return role_of(participant.identity, dict(participant.attributes))


_KINDS = frozenset(v for _, v in models.ParticipantInfo.Kind.items())


def parse(event: WebhookEvent) -> RoomEvent:
    participant = event.participant if event.HasField("participant") else None
    return RoomEvent(
        id=event.id,
        kind=event.event,
        room=event.room.name if event.HasField("room") else "",
        room_sid=event.room.sid if event.HasField("room") else "",
        created_at=int(event.created_at),
        participant_sid=participant.sid if participant else "",
        identity=participant.identity if participant else "",
        name=participant.name if participant else "",
        role=_role(participant) if participant else "",
    )


def bearer(authorization: str) -> str:
    token = authorization.strip()
    return token[7:].strip() if token[:7].lower() == "bearer " else token


def signed_by_us(authorization: str, api_key: str, api_secret: str) -> bool:
    """The cheap half of :func:`verify`, before any body is read: the token is a JWT whose HS256
    signature is ours, issued by our API key and not expired (livekit-api's TokenVerifier; the body
    hash is checked afterwards by :func:`verify`). Junk from the internet stops here."""
    token = bearer(authorization)
    if not token or token.count(".") != 2 or len(token) > 8192 or not api_key or not api_secret:
        return False
    try:
        TokenVerifier(api_key, api_secret, leeway=LEEWAY).verify(token)
    except Exception:  # PyJWT's errors, a malformed token: all mean "not LiveKit's, not ours"
        return False
    return True


def shaped_like_livekit(authorization: str) -> bool:
    """A JWT (not verified) whose claims carry ``iss`` and LiveKit's ``sha256`` body hash: what a
    LiveKit signing with another key sends — worth a warning — as opposed to arbitrary junk."""
    import base64
    import json

    token = bearer(authorization)
    if token.count(".") != 2 or len(token) > 8192:
        return False
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return False
    return isinstance(claims, dict) and bool(claims.get("iss")) and bool(claims.get("sha256"))


def verify(body: bytes, authorization: str, api_key: str, api_secret: str) -> RoomEvent:
    """The event in ``body`` if ``authorization`` is LiveKit's valid signature of it; else WebhookRejected."""
    token = bearer(authorization)
    if not token:
        raise WebhookRejected("no Authorization header")
    if not api_key or not api_secret:
        raise WebhookRejected("no LiveKit key pair configured")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRejected("body is not UTF-8") from exc
    receiver = WebhookReceiver(TokenVerifier(api_key, api_secret, leeway=LEEWAY))
    try:
        event = receiver.receive(text, token)
    except Exception as exc:
        raise WebhookRejected(f"{type(exc).__name__}: {exc}"[:200]) from exc
    return parse(event)
