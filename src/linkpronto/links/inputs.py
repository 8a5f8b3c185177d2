"""What the outside world may send, as strict pydantic models — validated, never truncated.

* Every string is valid Unicode that can be stored anywhere: a lone surrogate (``"\\ud800"``, legal
  in JSON text, not encodable as UTF-8) or a NUL character is refused with 422, never a 500.
* Strict types: no ``true`` for an integer, no ``"5"`` for a number.
* The device-check result a link holder posts has a schema and a size limit; a result that does not
  fit is refused (422) instead of being stored cut in half (which used to break the link list).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from linkpronto.schema import SafeStr  # defined with the wire's types; re-exported here

#: The device-check result as stored (JSON text): at most this many bytes.
DEVICE_CHECK_MAX_BYTES = 16 * 1024
M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _StrictLenient(BaseModel):
    """Strict types; unknown fields are dropped (never stored), so a newer page still works."""

    model_config = ConfigDict(strict=True, extra="ignore")


# -- public listener ---------------------------------------------------------------------------------
class JoinRequest(_StrictLenient):
    token: Annotated[SafeStr, Field(min_length=1, max_length=200)]
    display_name: Annotated[SafeStr, Field(max_length=80)] | None = None


class CheckItem(_StrictLenient):
    name: Annotated[SafeStr, Field(max_length=64)]
    status: Annotated[SafeStr, Field(max_length=32)]
    message: Annotated[SafeStr, Field(max_length=500)] | None = None


class MediaCandidateReport(_StrictLenient):
    type: Annotated[SafeStr, Field(max_length=16)] | None = None  # host | srflx | prflx | relay
    protocol: Annotated[SafeStr, Field(max_length=8)] | None = None  # udp | tcp
    address: Annotated[SafeStr, Field(max_length=64)] | None = None  # LiveKit's side, ip:port


class MediaCheckReport(_StrictLenient):
    """The patient's real WebRTC check (patient.js): camera and microphone published to this LiveKit."""

    ok: bool
    #: passed | failed | skipped (no camera), and why when it failed: a stable reason word.
    status: Annotated[SafeStr, Field(max_length=16)]
    reason: Annotated[SafeStr, Field(max_length=32)] | None = None  # signal | ice | no_packets | black | ...
    packets_sent: Annotated[int, Field(ge=0, le=10**9)] | None = None
    black: bool | None = None
    rtt_ms: Annotated[float, Field(ge=0, le=600_000)] | None = None
    candidate: MediaCandidateReport | None = None
    duration_ms: Annotated[float, Field(ge=0, le=600_000)] | None = None
    error: Annotated[SafeStr, Field(max_length=300)] | None = None
    signalled: bool | None = None  # the signalling WebSocket got through before the failure


class DeviceCheckResult(_StrictLenient):
    ok: bool
    checks: Annotated[list[CheckItem], Field(max_length=32)] = []
    user_agent: Annotated[SafeStr, Field(max_length=512)] | None = None
    camera: Annotated[SafeStr, Field(max_length=32)] | None = None
    microphone: Annotated[SafeStr, Field(max_length=32)] | None = None
    browser: Annotated[SafeStr, Field(max_length=64)] | None = None
    secure_context: bool | None = None
    media_error: Annotated[SafeStr, Field(max_length=500)] | None = None
    phase: Annotated[SafeStr, Field(max_length=32)] | None = None
    lang: Annotated[SafeStr, Field(max_length=16)] | None = None
    media: MediaCheckReport | None = None  # the real WebRTC check, when the page ran it

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class MediaCheckTokenRequest(_StrictLenient):
    token: Annotated[SafeStr, Field(min_length=1, max_length=200)]


class DeviceCheckRequest(_StrictLenient):
    token: Annotated[SafeStr, Field(min_length=1, max_length=200)]
    result: DeviceCheckResult


def parse(model: type[M], body: bytes) -> tuple[M | None, list[str]]:
    """``(instance, [])`` or ``(None, [bad field names])`` for a JSON request body."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return None, ["body"]
    if not isinstance(data, dict):
        return None, ["body"]
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        names = [".".join(str(p) for p in e.get("loc", ())) or "body" for e in exc.errors()]
        return None, sorted(set(names))


def stored_device_check(result: DeviceCheckResult) -> dict[str, Any] | None:
    """The result as it will be stored, or None when it is larger than :data:`DEVICE_CHECK_MAX_BYTES`."""
    doc = result.to_stored()
    if len(json.dumps(doc, ensure_ascii=False).encode("utf-8")) > DEVICE_CHECK_MAX_BYTES:
        return None
    return doc


def decode_stored(text: str | None) -> Any:
    """A JSON column as stored, or ``{"unreadable": true}`` for a value an older version stored cut
    (the link list must answer whatever a link holder sent in the past)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return {"unreadable": True}
