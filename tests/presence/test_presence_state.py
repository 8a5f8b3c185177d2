"""Presence from room events: the state machine, duplicates and out-of-order delivery."""

from __future__ import annotations

import itertools

from linkpronto.events import presence as pres
from linkpronto.events.webhook import RoomEvent, role_of

_ids = itertools.count()


def ev(kind: str, psid: str = "", role: str = "patient", name: str = "Maria", room_sid: str = "RM_1",
       at: int = 100, eid: str | None = None) -> RoomEvent:
    return RoomEvent(id=eid or f"EV_{next(_ids)}", kind=kind, room="consulta-1", room_sid=room_sid,
                     created_at=at, participant_sid=psid, identity=("p-" if role == "patient" else "h-") + psid,
                     name=name, role=role)


def run(*events: RoomEvent) -> tuple[str | None, str | None]:
    state = pres.load_state(None)
    for e in events:
        pres.apply(state, e)
    return pres.derive(state)


def test_roles_from_attribute_then_prefix() -> None:
    assert role_of("p-abc") == "patient"
    assert role_of("h-abc") == "professional"
    assert role_of("dr-ana-from-the-app") == "professional"
    assert role_of("whatever", {"linkpronto.role": "patient"}) == "patient"
    assert role_of("p-abc", {"linkpronto.role": "professional"}) == "professional"


def test_waiting_in_call_ended() -> None:
    joined = ev("participant_joined", "PA_p", at=100)
    host = ev("participant_joined", "PA_h", role="professional", name="Dra", at=110)
    assert run(joined) == ("waiting", "Maria")
    assert run(joined, host) == ("in_call", None)
    left_p = ev("participant_left", "PA_p", at=120)
    left_h = ev("participant_left", "PA_h", role="professional", at=121)
    assert run(joined, host, left_p) == (None, None)  # the professional alone: nobody waiting
    assert run(joined, host, left_p, left_h, ev("room_finished", at=140)) == ("ended", None)


def test_room_finished_without_a_call_is_not_ended() -> None:
    assert run(ev("participant_joined", "PA_p"), ev("participant_left", "PA_p"), ev("room_finished")) == (None, None)


def test_duplicates_change_nothing() -> None:
    state = pres.load_state(None)
    joined = ev("participant_joined", "PA_p")
    assert pres.apply(state, joined)
    before = pres.dump_state(state)
    assert not pres.apply(state, joined)
    assert pres.dump_state(state) == before


def test_left_delivered_before_joined_stays_left() -> None:
    assert run(ev("participant_left", "PA_p", at=101), ev("participant_joined", "PA_p", at=100)) == (None, None)


def test_late_event_of_a_finished_room_is_ignored() -> None:
    events = [ev("participant_joined", "PA_p"), ev("participant_joined", "PA_h", role="professional"),
              ev("room_finished", at=200), ev("participant_joined", "PA_x", at=150)]
    assert run(*events) == ("ended", None)


def test_a_new_room_session_starts_fresh() -> None:
    first = [ev("participant_joined", "PA_p"), ev("participant_joined", "PA_h", role="professional"),
             ev("room_finished", at=200)]
    again = ev("participant_joined", "PA_p2", name="Maria", room_sid="RM_2", at=300)
    assert run(*first, again) == ("waiting", "Maria")


def test_first_patient_names_the_wait() -> None:
    a = ev("participant_joined", "PA_a", name="Maria", at=100)
    b = ev("participant_joined", "PA_b", name="João", at=105)
    assert run(b, a) == ("waiting", "Maria")


def test_names_are_forgotten_when_the_room_finishes() -> None:
    state = pres.load_state(None)
    for e in (ev("participant_joined", "PA_p", name="Maria"), ev("room_finished")):
        pres.apply(state, e)
    assert "Maria" not in pres.dump_state(state)


def test_recorders_and_agents_are_not_the_professional() -> None:
    from livekit.protocol import models
    from livekit.protocol.webhook import WebhookEvent

    from linkpronto.events.webhook import parse

    egress = WebhookEvent(event="participant_joined", id="EV_e", created_at=100,
                          room=models.Room(sid="RM_1", name="consulta-1"),
                          participant=models.ParticipantInfo(sid="PA_e", identity="EG_rec",
                                                             kind=models.ParticipantInfo.EGRESS))
    assert parse(egress).role == "other"
    assert run(ev("participant_joined", "PA_p"), parse(egress)) == ("waiting", "Maria")
