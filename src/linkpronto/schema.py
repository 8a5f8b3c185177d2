"""The contract as types: every document the admin API, the SSE stream, the CLI and the test fakes speak.

These pydantic models ARE the shapes of ``CONTRACT.md`` (plus the extensions listed in the README's
changelog). The API renders them, the CLI reads them, and the browser tests' fake API builds its
answers from them, so a renamed field fails everywhere at once instead of drifting.

::

    Status ─┬─ tunnel: TunnelInfo ── last_error: Problem
            ├─ components: {name: Part} ── error: Problem
            ├─ verification: Verification ── checks: [Check]
            ├─ media: Media
            └─ problems: [Problem]
    Link ── checks: [Check], error: Problem
    JoinGrant · HostGrant · RuntimeConfig · ProbeAnswer
    DropInReady (200) · DropInNotReady (202/503) · DropInInvalid (400)
    ErrorBody {error: Problem} · InvalidRequest {error, fields: [FieldError]} (422)

Documents here carry *rendered* text (one language, chosen at rendering); the program keeps
:class:`~linkpronto.i18n.Text` (both languages) until then.

Times are ISO-8601 UTC with a ``Z`` (:data:`UtcTime`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints

__all__ = [
    "Check",
    "CreateLinkRequest",
    "DropInInvalid",
    "DropInNotReady",
    "DropInReady",
    "DropInRequest",
    "ErrorBody",
    "FieldError",
    "HostGrant",
    "InvalidRequest",
    "JoinGrant",
    "Link",
    "LinkList",
    "LinkStatus",
    "LivekitEventRef",
    "Media",
    "MediaReach",
    "Part",
    "PartState",
    "Presence",
    "PresenceEvent",
    "ProbeAnswer",
    "Problem",
    "Required",
    "RuntimeConfig",
    "SafeStr",
    "StackState",
    "Status",
    "TunnelInfo",
    "UtcTime",
    "Verification",
    "dump",
    "iso",
]


def iso(dt: datetime | None) -> str | None:
    """``2026-12-02T02:19:31.123456Z`` (UTC, the contract's time format)."""
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _storable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode (lone surrogate)") from None
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value


#: A string that is valid Unicode and storable on every backend (a lone surrogate or a NUL is refused).
SafeStr = Annotated[str, AfterValidator(_storable)]

# -- the app's own LiveKit room name (issue 16) ---------------------------------------------------------
#: LiveKit accepts almost any string as a room name; the app's names are URL/identifier-like
#: (``consulta-dra-ana``). Letters, digits and ``-_.:@``, starting with a letter or digit, at most 64
#: (the ``links.room`` column); ``linkpronto-`` is linkpronto's own (the probe room).
ROOM_RE = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"


def _room_name(value: str) -> str:
    if value.startswith("linkpronto-"):
        raise ValueError("names starting with 'linkpronto-' are linkpronto's own")
    return value


RoomName = Annotated[str, Field(pattern=ROOM_RE), AfterValidator(_room_name)]

#: A string that must say something: ``""`` fails validation (codes, messages, ids, names, URLs).
Required = Annotated[str, StringConstraints(min_length=1)]

#: A point in time, serialised as ISO-8601 UTC with ``Z``; accepts the same strings as input.
UtcTime = Annotated[datetime, PlainSerializer(_iso, return_type=str)]


class _Model(BaseModel):
    """Answers are built by the program: no coercion surprises, unknown fields refused. Validators are
    built when a model is first used (``defer_build``), not at import: start-up stays fast."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, ser_json_inf_nan="null", defer_build=True)


# -- states ------------------------------------------------------------------------------------------


class StackState(enum.StrEnum):
    """The stack's state (CONTRACT.md: ``stopped, starting, verifying, ready, degraded, failed``)."""

    STOPPED = "stopped"
    STARTING = "starting"
    VERIFYING = "verifying"
    READY = "ready"
    DEGRADED = "degraded"
    FAILED = "failed"


class PartState(enum.StrEnum):
    """One state vocabulary for every part (LiveKit, the tunnel, the app)."""

    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    ADOPTED = "adopted"  # someone else runs it; we only health-check it
    EXTERNAL = "external"  # configured as external/cloud; ready while its health check passes
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"  # waiting to start again (back-off) or reconnecting
    STOPPING = "stopping"
    FAILED = "failed"  # will not recover unattended

    @property
    def is_up(self) -> bool:
        return self in _UP

    @property
    def is_final(self) -> bool:
        return self is PartState.FAILED


_UP = frozenset({PartState.READY, PartState.ADOPTED, PartState.EXTERNAL})


class LinkStatus(enum.StrEnum):
    """A link's status (CONTRACT.md). A link that cannot be verified stays ``preparing``."""

    PREPARING = "preparing"
    READY = "ready"
    EXPIRED = "expired"
    REVOKED = "revoked"
    EXHAUSTED = "exhausted"


MediaReach = Literal["same-network", "anywhere", "none", "unknown"]


# -- building blocks ---------------------------------------------------------------------------------


class Problem(_Model):
    """``{code, message, fix}``: a stable code, a sentence for a person, and what to do."""

    code: Required
    message: Required
    fix: str | None = None
    detail: str | None = None  # technical context (a log tail line, a URL); never a secret


class Check(_Model):
    """One rung of the verification ladder."""

    name: Required
    ok: bool
    duration_ms: float
    detail: str = ""
    fix: str | None = None
    required: bool = True


class Part(_Model):
    """A part's status (``components.<name>`` in Status)."""

    state: PartState
    detail: str = ""
    url: str | None = None
    pid: int | None = None
    restarts: int = 0
    since: UtcTime
    error: Problem | None = None
    facts: dict[str, Any] | None = None


class TunnelInfo(_Model):
    """``Status.tunnel``: the provider in use, its state and its trade-off."""

    provider: Required
    state: PartState
    public_url: str | None = None
    detail: str = ""
    last_error: Problem | None = None
    reconnects: int = 0
    since: UtcTime | None = None
    tradeoff: str | None = None
    facts: dict[str, Any] | None = None


class Verification(_Model):
    ok: bool
    stale: bool = False  # results from before the last part event: shown, but no longer proof
    checked_at: UtcTime | None = None
    age_s: float | None = None
    checks: list[Check] = Field(default_factory=list)


class MediaCandidate(_Model):
    type: str
    protocol: str
    address: str


class Media(_Model):
    reach: MediaReach = "unknown"
    detail: str = ""
    measured: bool = False  # the media rung's measurement (else the configuration's judgement)
    candidate: MediaCandidate | None = None  # the ICE candidate pair the rung's media used
    first_frame_ms: float | None = None


class Status(_Model):
    """``GET /api/status`` and every ``event: status`` of the SSE stream."""

    state: StackState
    since: UtcTime
    reason: str = ""
    mode: Literal["always-on", "on-demand"] = "always-on"
    public_url: str | None = None
    livekit_url: str | None = None
    admin_url: str | None = None
    tunnel: TunnelInfo
    components: dict[str, Part] = Field(default_factory=dict)
    verification: Verification
    media: Media = Field(default_factory=Media)
    problems: list[Problem] = Field(default_factory=list)


# -- links -------------------------------------------------------------------------------------------


#: ``waiting`` (patient in the room, professional not), ``in_call`` (both), ``ended`` (the room finished
#: after a call); null otherwise.
Presence = Literal["waiting", "in_call", "ended", "media_aborted"]


class Link(_Model):
    """A consultation link. ``url`` is null until the link is ``ready`` (proven)."""

    id: Required
    status: LinkStatus
    url: Required | None = None
    professional_id: Required
    client_id: str | None = None
    consultation_type: str | None = None
    room: Required
    created_at: UtcTime
    expires_at: UtcTime
    max_uses: int = 0
    uses: int = 0
    verified_at: UtcTime | None = None
    public_base_url: str | None = None
    sent_base_url: str | None = None
    sent_with_old_address: bool = False
    checks: list[Check] = Field(default_factory=list)
    device_check: dict[str, Any] | None = None
    error: Problem | None = None
    qr_svg_url: str | None = None
    whatsapp_url: str | None = None
    # Who is in the room (extension, linkpronto.events): `status` is unchanged by it.
    presence: Presence | None = None
    presence_since: UtcTime | None = None
    waiting_name: str | None = None  # the patient's display name, only while `waiting`


class LivekitEventRef(_Model):
    id: str
    event: str


class PresenceEvent(_Model):
    """``event: presence`` on the status stream, and the body POSTed to ``app.events_url``."""

    id: str  # also the Idempotency-Key header of the app callback
    type: Literal["link.presence"] = "link.presence"
    link_id: str
    room: str
    professional_id: str
    client_id: str | None = None
    consultation_type: str | None = None
    presence: Presence | None = None
    previous: Presence | None = None
    presence_since: UtcTime | None = None
    waiting_name: str | None = None
    occurred_at: UtcTime
    livekit_event: LivekitEventRef


class LinkList(_Model):
    items: list[Link]


class JoinGrant(_Model):
    """``POST /_linkpronto/api/join`` → what the patient's browser needs to connect."""

    livekit_url: Required
    access_token: Required
    room: Required
    identity: Required
    expires_at: UtcTime


class HostGrant(_Model):
    """``POST /api/consultation-links/{id}/host-token`` → the professional's side of the room."""

    livekit_url: Required
    access_token: Required
    room: Required
    identity: Required


class RuntimeConfig(_Model):
    site_url: str | None
    livekit_url: str | None


class ProbeAnswer(_Model):
    instance: Required
    nonce: Required
    mac: Required


# -- errors ------------------------------------------------------------------------------------------


class ErrorBody(_Model):
    """Every error answer of the admin and public APIs: ``{"error": Problem}``."""

    error: Problem


class FieldError(_Model):
    field: Required
    message: Required


class InvalidRequest(_Model):
    """422: ``{error: Problem(INVALID_REQUEST), fields: [{field, message}]}``."""

    error: Problem
    fields: list[FieldError]


# -- requests ----------------------------------------------------------------------------------------


class CreateLinkRequest(BaseModel):
    """``POST /api/consultation-links``. Strict types (no ``true`` for 1, no ``"5"`` for 5), strings
    that are valid Unicode (a lone surrogate is 422, never 500), a link that lives at least 60 s."""

    model_config = ConfigDict(extra="forbid", strict=True)
    professional_id: SafeStr = Field(min_length=1, max_length=200)
    client_id: SafeStr | None = Field(default=None, max_length=200)
    consultation_type: SafeStr | None = Field(default=None, max_length=100)
    expires_in_s: float | None = Field(default=None, ge=60, le=90 * 86400, allow_inf_nan=False)
    max_uses: int | None = Field(default=None, ge=0, le=1000)
    wait_s: float = Field(default=20, ge=0, le=60, allow_inf_nan=False)
    room: RoomName | None = None  # the app's own LiveKit room (issue 16)


class DropInRequest(BaseModel):
    """``POST /api/generate-consultation-token``: the user's existing route's body (camelCase)."""

    model_config = ConfigDict(extra="ignore", strict=True)
    professionalId: SafeStr = Field(min_length=1, max_length=200)
    clientId: SafeStr | None = Field(default=None, max_length=200)
    consultationType: SafeStr | None = Field(default=None, max_length=100)
    expiresInS: float | None = Field(default=None, ge=60, le=90 * 86400, allow_inf_nan=False)
    waitS: float = Field(default=20, ge=0, le=60, allow_inf_nan=False)
    # The app's own room (issue 16): ``roomName`` as the app computes it; ``room`` is accepted too.
    roomName: RoomName | None = None
    room: RoomName | None = None
    # The app's own WhatsApp wording: ``{url}`` (required), optional ``{name}``/``{type}``.
    messageTemplate: SafeStr | None = Field(default=None, min_length=5, max_length=1000, pattern=r"\{url\}")


# -- the drop-in route's answers ---------------------------------------------------------------------


#: A value the drop-in's old callers show or open as is: never empty (issue 17: "" used to pass).
_Filled = Annotated[str, Field(min_length=1)]
_WebUrl = Annotated[str, Field(pattern=r"^https?://[^\s/]+/\S*$")]


class DropInReady(_Model):
    """200: the link is verified. None of these is null, nor empty."""

    success: Literal[True] = True
    token: _Filled
    consultationUrl: _WebUrl
    qrCode: Annotated[str, Field(pattern=r"^data:image/svg\+xml[;,]")]  # made locally
    whatsappDeepLink: Annotated[str, Field(pattern=r"^https://wa\.me/\?text=\S+$")]
    shortMessage: _Filled
    expiresAt: UtcTime
    createdAt: UtcTime
    status: Literal[LinkStatus.READY] = LinkStatus.READY
    verifiedAt: UtcTime
    linkId: _Filled
    room: _Filled


class DropInNotReady(_Model):
    """202 (still preparing; it becomes ready by itself) or 503 (failed).

    ``error`` is a sentence for a person, so an old client that shows ``data.error`` shows
    something true. ``linkId`` is null when no link could be issued (the stack has failed).
    """

    success: Literal[False] = False
    error: Required
    code: Required
    fix: str | None = None
    linkId: str | None = None
    status: str


class DropInInvalid(_Model):
    """400: bad input, like the old route (``fields`` names each bad field)."""

    success: Literal[False] = False
    error: Required
    fields: list[FieldError]


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a document (enums as values, times as ISO strings)."""
    return model.model_dump(mode="json")
