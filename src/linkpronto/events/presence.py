"""Who is in a link's room, from LiveKit webhooks: ``waiting``, ``in_call``, ``ended`` (or none).

- ``waiting``: a patient is in the room and no professional is;
- ``in_call``: both are;
- ``ended``: the room finished (LiveKit's ``room_finished``) after a call took place in it;
- ``media_aborted``: nobody is waiting, and the patient's last attempt reached the room but its video
  never connected (``participant_connection_aborted``: ICE never completed — a 4G or company network
  blocking LiveKit's media ports); the dashboard says so, with the fix;
- ``None``: nobody is waiting and no call is on (never joined, the patient gave up, the professional
  alone, or a room that finished without a call).

The state kept per link (``presence_json``) is per LiveKit *participant session* (participant sid)
within one *room session* (room sid), which makes it indifferent to duplicates and to order, both of
which LiveKit's retried deliveries can produce:

- a participant sid that has left stays left: a ``participant_joined`` delivered after its
  ``participant_left`` is ignored;
- a finished room sid stays finished: late events for it are ignored; a new room sid (the room was
  created again) starts a new session;
- event ids already applied are remembered (the last :data:`SEEN_IDS`) and skipped.

``presence_since`` is the ``createdAt`` of the event that caused the current value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from linkpronto.events.webhook import OTHER, PATIENT, RoomEvent

WAITING, IN_CALL, ENDED = "waiting", "in_call", "ended"
# The patient's signalling reached LiveKit but its media never connected (participant_connection_aborted:
# LiveKit makes a participant active, and sends participant_joined, only once ICE completes).
MEDIA_ABORTED = "media_aborted"
VALUES = (WAITING, IN_CALL, ENDED, MEDIA_ABORTED)
SEEN_IDS = 64
FINISHED_ROOMS = 8
NAME_MAX = 80


@dataclass(frozen=True, slots=True)
class Presence:
    presence: str | None
    since: datetime | None
    waiting_name: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "presence": self.presence,
            "presence_since": _iso(self.since),
            "waiting_name": self.waiting_name,
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _empty_state() -> dict[str, Any]:
    return {"room_sid": "", "started": 0, "finished": False, "had_call": False, "participants": {},
            "seen": [], "finished_rooms": []}


def load_state(text: str | None) -> dict[str, Any]:
    if not text:
        return _empty_state()
    try:
        state = json.loads(text)
    except ValueError:
        return _empty_state()
    base = _empty_state()
    base.update(state if isinstance(state, dict) else {})
    return base


def apply(state: dict[str, Any], ev: RoomEvent) -> bool:
    """Apply one event to ``state`` in place; False when it changes nothing (duplicate, late, ignored)."""
    if ev.id and ev.id in state["seen"]:
        return False
    if ev.id:
        state["seen"] = [*state["seen"], ev.id][-SEEN_IDS:]
    if not ev.handled:
        return bool(ev.id)
    if ev.room_sid and ev.room_sid in state["finished_rooms"]:
        return bool(ev.id)  # a late event for a room session that already finished
    if ev.room_sid and ev.room_sid != state["room_sid"]:
        if state["room_sid"] and not state["finished"] and ev.created_at < state["started"]:
            return bool(ev.id)  # older than the session we track: a stray late event
        if state["room_sid"] and state["room_sid"] not in state["finished_rooms"]:
            state["finished_rooms"] = [*state["finished_rooms"], state["room_sid"]][-FINISHED_ROOMS:]
        state.update(room_sid=ev.room_sid, started=ev.created_at, finished=False, had_call=False,
                     participants={})
    elif not state["room_sid"] and not state["started"]:
        state["started"] = ev.created_at
    participants: dict[str, dict[str, Any]] = state["participants"]
    key = ev.participant_sid or ev.identity
    if ev.role == OTHER:
        return bool(ev.id)  # a recorder or an agent: not someone the professional waits for
    if ev.kind == "participant_joined" and key:
        known = participants.get(key)
        if known is not None and known.get("left"):
            return bool(ev.id)  # joined delivered after left: that session is over
        participants[key] = {"role": ev.role, "name": (ev.name or "")[:NAME_MAX], "at": ev.created_at,
                             "left": False}
    elif ev.kind in ("participant_left", "participant_connection_aborted") and key:
        entry = participants.setdefault(key, {"role": ev.role, "name": "", "at": ev.created_at})
        entry["left"] = True
        entry["name"] = ""  # gone from the room: the name is no longer shown, so no longer kept
        if ev.kind == "participant_connection_aborted":
            # ...except when its video never connected: "Maria reached the room, but the video never
            # connected" is shown until a later attempt or the room's end (which clears it)
            entry["aborted"] = True
            entry["name"] = (ev.name or "")[:NAME_MAX]
    elif ev.kind == "room_finished":
        state["finished"] = True
        for entry in participants.values():
            entry["left"] = True
            entry["name"] = ""  # the patient's name is kept no longer than it is shown
        if state["room_sid"]:
            state["finished_rooms"] = [*state["finished_rooms"], state["room_sid"]][-FINISHED_ROOMS:]
    present = [p for p in participants.values() if not p.get("left")]
    if any(p["role"] == PATIENT for p in present) and any(p["role"] != PATIENT for p in present):
        state["had_call"] = True
    return True


def derive(state: dict[str, Any]) -> tuple[str | None, str | None]:
    """(presence, waiting_name) of a state."""
    if state["finished"]:
        return (ENDED if state["had_call"] else None), None
    present = sorted((p for p in state["participants"].values() if not p.get("left")), key=lambda p: p["at"])
    patients = [p for p in present if p["role"] == PATIENT]
    professionals = [p for p in present if p["role"] != PATIENT]
    if patients and professionals:
        return IN_CALL, None
    if patients:
        return WAITING, patients[0]["name"] or None
    # Nobody waiting: if the patient's last attempt reached the room but its video never connected, say so.
    tried = sorted((p for p in state["participants"].values() if p["role"] == PATIENT), key=lambda p: p["at"])
    if tried and tried[-1].get("aborted"):
        return MEDIA_ABORTED, tried[-1]["name"] or None
    return None, None


def forget_names(state: dict[str, Any]) -> dict[str, Any]:
    """The same state with no patient's name left in it (a link that ended; LGPD minimisation)."""
    for entry in state.get("participants", {}).values():
        entry["name"] = ""
    last = state.get("last_event")
    if isinstance(last, dict) and last.get("waiting_name"):
        state["last_event"] = {**last, "waiting_name": None}
    return state


def dump_state(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"))


def event_time(ev: RoomEvent) -> datetime:
    return datetime.fromtimestamp(ev.created_at, UTC) if ev.created_at > 0 else datetime.now(UTC)
