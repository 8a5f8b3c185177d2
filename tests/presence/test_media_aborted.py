"""A patient whose signalling reached LiveKit but whose media never connected: LiveKit sends
``participant_connection_aborted`` (never ``participant_joined``), and presence says ``media_aborted``
— not ``waiting``, not ``in_call`` — until the patient tries again."""

from __future__ import annotations

from linkpronto.events import presence as pres
from linkpronto.events.webhook import PATIENT, RoomEvent


def ev(kind: str, sid: str, *, role: str = PATIENT, name: str = "Maria", at: int = 100,
       room_sid: str = "RM_1") -> RoomEvent:
    return RoomEvent(id=f"EV_{kind}_{sid}_{at}", kind=kind, room="r", room_sid=room_sid, created_at=at,
                     participant_sid=sid, identity=sid, name=name, role=role)


def run(*events: RoomEvent) -> tuple[str | None, str | None]:
    state = pres.load_state(None)
    for e in events:
        pres.apply(state, e)
    return pres.derive(state)


def test_aborted_patient_is_media_aborted_with_the_name() -> None:
    assert run(ev("participant_connection_aborted", "PA_p")) == (pres.MEDIA_ABORTED, "Maria")


def test_aborted_patient_with_the_professional_in_the_room_is_not_in_call() -> None:
    host = ev("participant_joined", "PA_h", role="professional", name="Dra", at=90)
    assert run(host, ev("participant_connection_aborted", "PA_p")) == (pres.MEDIA_ABORTED, "Maria")


def test_a_later_successful_attempt_wins() -> None:
    again = ev("participant_joined", "PA_p2", at=130)
    assert run(ev("participant_connection_aborted", "PA_p"), again) == (pres.WAITING, "Maria")


def test_a_patient_who_left_normally_is_not_media_aborted() -> None:
    assert run(ev("participant_joined", "PA_p"), ev("participant_left", "PA_p", at=120)) == (None, None)
