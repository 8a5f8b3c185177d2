"""The stack's decisions as tables: every state, every transition, proof ages around max_age and the
re-run period, a URL change during a ladder run. No I/O, no clock: each row is a snapshot and ``now``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from linkpronto.errors import InsecureLivekitKeys, LivekitCrashLoop, TunnelUrlChanged
from linkpronto.i18n import Text
from linkpronto.machine import Action, PartView, ProofView, Snapshot, Timing, decide, usable
from linkpronto.schema import PartState, StackState

T = Timing(max_age=10.0, refresh=7.0, retry=1.0, heartbeat=15.0)
NOW = 1000.0
UP = (PartView("livekit", PartState.READY), PartView("tunnel", PartState.READY))
NEEDED = ("livekit", "tunnel")
S = StackState


def snap(previous: S = S.VERIFYING, **kw: object) -> Snapshot:
    base = Snapshot(running=True, previous=previous, parts=UP, needed=NEEDED, https=True,
                    public_url="https://x.example")
    return replace(base, **kw)  # type: ignore[arg-type]


def passed(age: float, *, promoted: bool = True, took: float = 0.03) -> ProofView:
    return ProofView(ok=True, started_at=NOW - age, finished_at=NOW - age + took, promoted=promoted)


def failed(age: float, took: float = 0.03) -> ProofView:
    return ProofView(ok=False, started_at=NOW - age, finished_at=NOW - age + took,
                     failure=("public_probe", Text.same("HTTP 502"), Text("pt", "en")))


# -- states and transitions ---------------------------------------------------------------------------
STATE_TABLE = [
    # (name, snapshot, proof, expected state)
    ("not running", snap(running=False), None, S.STOPPED),
    ("not running, even with a proof", snap(running=False, previous=S.READY), passed(1), S.STOPPED),
    ("stack failure", snap(failure=InsecureLivekitKeys()), passed(1), S.FAILED),
    ("part failed for good", snap(parts=(PartView("livekit", PartState.FAILED, error=LivekitCrashLoop()),
                                         UP[1])), passed(1), S.FAILED),
    ("no parts yet", snap(previous=S.STARTING, parts=()), None, S.STARTING),
    ("tunnel opening", snap(previous=S.STARTING, parts=(UP[0], PartView("tunnel", PartState.STARTING))),
     None, S.STARTING),
    ("ready, then tunnel down", snap(previous=S.READY, parts=(UP[0], PartView("tunnel", PartState.UNHEALTHY))),
     passed(1), S.DEGRADED),
    ("degraded stays degraded while a part is down",
     snap(previous=S.DEGRADED, parts=(PartView("livekit", PartState.RESTARTING), UP[1])), None, S.DEGRADED),
    ("the app is needed too", snap(needed=(*NEEDED, "app")), passed(1), S.STARTING),
    ("adopted and external parts count as up",
     snap(parts=(PartView("livekit", PartState.EXTERNAL), PartView("tunnel", PartState.ADOPTED))),
     passed(1), S.READY),
    ("parts up, no proof yet", snap(previous=S.STARTING), None, S.VERIFYING),
    ("parts up, proof passed", snap(), passed(0.5), S.READY),
    ("parts up, ladder failed", snap(), failed(0.5), S.VERIFYING),
    ("was ready, ladder failed", snap(previous=S.READY), failed(0.5), S.DEGRADED),
    ("was degraded, ladder passes again", snap(previous=S.DEGRADED), passed(0.1), S.READY),
    ("was ready, proof aged out: still ready while it re-runs", snap(previous=S.READY), passed(10.5), S.READY),
    ("was degraded, proof invalidated by an event", snap(previous=S.DEGRADED, invalidated_at=NOW - 0.2),
     passed(1), S.DEGRADED),
    ("starting, proof from before an event", snap(previous=S.STARTING, invalidated_at=NOW - 0.2),
     passed(1), S.VERIFYING),
]


@pytest.mark.parametrize(("name", "snapshot", "proof", "state"), STATE_TABLE, ids=[r[0] for r in STATE_TABLE])
def test_states(name: str, snapshot: Snapshot, proof: ProofView | None, state: S) -> None:
    assert decide(snapshot, proof, NOW, T).state is state


def test_every_stack_state_is_reachable() -> None:
    assert {row[3] for row in STATE_TABLE} == set(S)


# -- proof ages: max_age and the re-run period -----------------------------------------------------------
AGE_TABLE = [
    # (age of the proof, usable?, ladder re-run now?)
    (0.0, True, False),
    (6.99, True, False),
    (7.0, True, True),  # the re-run period: renew it while it still counts
    (9.99, True, True),
    (10.0, True, True),  # max_age itself still counts
    (10.01, False, True),
    (30.0, False, True),
]


@pytest.mark.parametrize(("age", "counts", "rerun"), AGE_TABLE)
def test_proof_age_boundaries(age: float, counts: bool, rerun: bool) -> None:
    d = decide(snap(previous=S.READY), passed(age), NOW, T)
    assert d.proof_usable is counts
    assert (Action.RUN_LADDER in d.actions) is rerun
    assert usable(passed(age), float("-inf"), NOW, T.max_age) is counts
    if not rerun:
        assert d.wake_at == pytest.approx(NOW - age + T.refresh)  # wakes exactly when the re-run is due


def test_the_rerun_period_keeps_a_proof_always_there() -> None:
    # Simulate a stack that follows its own decisions: a 30 ms ladder run whenever one is asked for.
    now, proof, gaps = 0.0, passed(0.0), []
    proof = ProofView(ok=True, started_at=0.0, finished_at=0.03, promoted=True)
    while now < 120.0:
        d = decide(snap(previous=S.READY), proof, now, T)
        if not d.proof_usable:
            gaps.append(now)
        if Action.RUN_LADDER in d.actions:
            proof = ProofView(ok=True, started_at=now, finished_at=now + 0.03, promoted=True)
        now = max(now + 0.001, min(d.wake_at, now + 0.25))
    assert gaps == []


def test_no_second_run_while_one_is_in_flight() -> None:
    d = decide(snap(previous=S.READY, ladder_running=True), passed(8), NOW, T)
    assert Action.RUN_LADDER not in d.actions and d.state is S.READY
    assert d.wake_at == NOW + T.heartbeat  # the run's end wakes the runner: no busy loop meanwhile


def test_failed_run_is_retried_after_the_retry_delay() -> None:
    assert Action.RUN_LADDER not in decide(snap(), failed(0.5), NOW, T).actions
    assert decide(snap(), failed(0.5), NOW, T).wake_at == pytest.approx(NOW - 0.5 + 0.03 + T.retry)
    assert Action.RUN_LADDER in decide(snap(), failed(1.2), NOW, T).actions


# -- promotion of waiting links -----------------------------------------------------------------------------
def test_waiting_links_are_promoted_once_per_proof() -> None:
    assert Action.PROMOTE in decide(snap(), passed(0.1, promoted=False), NOW, T).actions
    assert Action.PROMOTE not in decide(snap(), passed(0.1, promoted=True), NOW, T).actions
    assert Action.PROMOTE not in decide(snap(), failed(0.1), NOW, T).actions
    # A proof from before a part event promotes nothing.
    stale = decide(snap(invalidated_at=NOW - 0.05), passed(0.1, promoted=False), NOW, T)
    assert Action.PROMOTE not in stale.actions


def test_url_change_during_a_ladder_run() -> None:
    # The run started at NOW-0.1; the URL changed at NOW-0.05, while it ran; it finished at NOW.
    run = ProofView(ok=True, started_at=NOW - 0.1, finished_at=NOW, promoted=False)
    event = (NOW - 0.05, TunnelUrlChanged.between("https://a.example", "https://b.example"))
    d = decide(snap(previous=S.READY, invalidated_at=NOW - 0.05, events=(event,)), run, NOW, T)
    assert not d.proof_usable
    assert Action.PROMOTE not in d.actions  # no link is made ready under the old address
    assert Action.RUN_LADDER in d.actions  # prove the new address at once
    assert [p.code for p in d.problems] == ["TUNNEL_URL_CHANGED"]
    # ...and when that run is in flight, it is not started twice.
    assert Action.RUN_LADDER not in decide(
        snap(previous=S.READY, invalidated_at=NOW - 0.05, ladder_running=True), run, NOW, T
    ).actions


# -- problems --------------------------------------------------------------------------------------------
def test_problems_carry_both_languages_and_codes() -> None:
    media = ProofView(ok=False, started_at=NOW - 1, finished_at=NOW - 0.9, failure=("public_rtc", Text.same("x"), None),
                      same_network_only=Text("pt fix", "en fix"))
    d = decide(snap(https=False, public_url="http://10.0.0.2:7801"), media, NOW, T)
    assert [p.code for p in d.problems] == ["VERIFY_FAILED", "MEDIA_SAME_NETWORK_ONLY", "INSECURE_ORIGIN"]
    for p in d.problems:
        assert p.message("en") != p.message("pt-BR")


def test_old_events_leave_the_problem_list() -> None:
    old = (NOW - 601, TunnelUrlChanged.between("a", "b"))
    assert decide(snap(events=(old,)), passed(1), NOW, T).problems == ()


def test_the_same_error_is_listed_once() -> None:
    err = InsecureLivekitKeys()
    d = decide(snap(failure=err, parts=(PartView("livekit", PartState.FAILED, error=err), UP[1])), None, NOW, T)
    assert [p.code for p in d.problems] == ["INSECURE_LIVEKIT_KEYS"]


# -- every arrow of the state diagram -------------------------------------------------------------------
DOWN = (UP[0], PartView("tunnel", PartState.UNHEALTHY))
TRANSITIONS = [
    # (from, snapshot changes, proof, to)
    (S.STOPPED, {"parts": ()}, None, S.STARTING),  # start()
    (S.STARTING, {}, None, S.VERIFYING),  # all parts up
    (S.VERIFYING, {}, passed(0.1, promoted=False), S.READY),  # ladder ok
    (S.VERIFYING, {}, failed(0.1), S.VERIFYING),  # ladder fails before ever being ready
    (S.READY, {"parts": DOWN}, passed(0.1), S.DEGRADED),  # a part goes down
    (S.READY, {}, failed(0.1), S.DEGRADED),  # the ladder fails
    (S.READY, {"invalidated_at": NOW - 0.01}, passed(0.1), S.READY),  # URL changed: re-proving
    (S.DEGRADED, {}, passed(0.1), S.READY),  # recovered
    (S.DEGRADED, {"parts": DOWN}, None, S.DEGRADED),
    (S.READY, {"failure": InsecureLivekitKeys()}, passed(0.1), S.FAILED),
    (S.STARTING, {"parts": (PartView("livekit", PartState.FAILED, error=LivekitCrashLoop()),)}, None, S.FAILED),
    (S.READY, {"running": False}, passed(0.1), S.STOPPED),  # stop()
    (S.FAILED, {"running": False}, None, S.STOPPED),
]


@pytest.mark.parametrize(("before", "changes", "proof", "after"), TRANSITIONS,
                         ids=[f"{t[0].value}->{t[3].value}-{i}" for i, t in enumerate(TRANSITIONS)])
def test_transitions(before: S, changes: dict[str, object], proof: ProofView | None, after: S) -> None:
    assert decide(snap(previous=before, **changes), proof, NOW, T).state is after


def test_every_state_is_left_and_entered() -> None:
    assert {t[0] for t in TRANSITIONS} == set(S) and {t[3] for t in TRANSITIONS} == set(S)
