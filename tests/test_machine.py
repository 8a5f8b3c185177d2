"""The stack's decisions as tables: every state, every transition, proof ages around max_age and the
re-run period, a URL change during a ladder run. No I/O, no clock: each row is a snapshot and ``now``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from linkpronto.errors import (
    InsecureLivekitKeys,
    LivekitCrashLoop,
    TunnelAuth,
    TunnelUnreachable,
    TunnelUrlChanged,
)
from linkpronto.i18n import Text
from linkpronto.machine import (
    LEGAL,
    Action,
    AppView,
    IdleView,
    IllegalTransition,
    LanView,
    MediaView,
    PartView,
    ProofView,
    Snapshot,
    StoreView,
    Timing,
    Transition,
    TunnelView,
    can_verify,
    check_transition,
    decide,
    invalidates,
    ladder_due,
    tunnel_recoverable,
    usable,
)
from linkpronto.schema import PartState, StackState

T = Timing(max_age=10.0, refresh=7.0, retry=1.0, heartbeat=15.0, tunnel_retry=1.0, tunnel_retry_max=30.0,
           store_retry=1.0, lan_retry=5.0)
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


# -- the rules the runner used to decide itself: one table each -------------------------------------------
A = Action
INF = float("inf")


def acts(d: object) -> set[Action]:
    return set(d.actions)  # type: ignore[attr-defined]


TUNNEL_TABLE = [
    # (name, tunnel view, open the tunnel now?, wake at (None: the heartbeat), state)
    ("never tried: open it", TunnelView(), True, None, S.STARTING),
    ("an attempt in flight: wait for it", TunnelView(opening=True), False, None, S.STARTING),
    ("open: nothing to do", TunnelView(opened=True), False, None, S.VERIFYING),
    ("unreachable once, 0.5 s ago: wait 1 s", TunnelView(failures=1, failed_at=NOW - 0.5,
     error=TunnelUnreachable()), False, NOW + 0.5, S.STARTING),
    ("unreachable once, 1 s ago: retry", TunnelView(failures=1, failed_at=NOW - 1.0,
     error=TunnelUnreachable()), True, None, S.STARTING),
    ("unreachable 3 times, 3.9 s ago: back-off is 4 s", TunnelView(failures=3, failed_at=NOW - 3.9,
     error=TunnelUnreachable()), False, NOW + 0.1, S.STARTING),
    ("unreachable 3 times, 4 s ago: retry", TunnelView(failures=3, failed_at=NOW - 4.0,
     error=TunnelUnreachable()), True, None, S.STARTING),
    ("unreachable 10 times: the back-off stops at 30 s", TunnelView(failures=10, failed_at=NOW - 29.0,
     error=TunnelUnreachable()), False, NOW + 1.0, S.STARTING),
    ("unreachable 10 times, 30 s ago: retry", TunnelView(failures=10, failed_at=NOW - 30.0,
     error=TunnelUnreachable()), True, None, S.STARTING),
    ("a refused token: never retried, the stack fails", TunnelView(failures=1, failed_at=NOW - 60,
     error=TunnelAuth()), False, None, S.FAILED),
]


@pytest.mark.parametrize(("name", "view", "opens", "wake", "state"), TUNNEL_TABLE, ids=[r[0] for r in TUNNEL_TABLE])
def test_tunnel_open_and_retry(name: str, view: TunnelView, opens: bool, wake: float | None, state: S) -> None:
    parts = UP if view.opened else (UP[0], PartView("tunnel", PartState.UNHEALTHY))
    d = decide(snap(previous=S.STARTING, parts=parts, tunnel=view), None, NOW, T)
    assert (A.OPEN_TUNNEL in d.actions) is opens
    assert d.wake_at == pytest.approx(wake if wake is not None else NOW + T.heartbeat)
    assert d.state is state
    if state is S.FAILED:
        assert d.failure is view.error and d.reason == view.error.text and "TUNNEL_AUTH" in [p.code for p in d.problems]


def test_only_unreachable_is_recoverable() -> None:
    # A class check on the error, not a string compare in the runner.
    assert tunnel_recoverable(TunnelUnreachable())
    assert not tunnel_recoverable(TunnelAuth())


STORE_TABLE = [
    # (name, store view, running, ping now?, wake)
    ("answers: nothing", StoreView(), True, False, NOW + 15),
    ("down, never pinged: ping", StoreView(down=True), True, True, NOW + 15),
    ("down, pinged 0.5 s ago: wait", StoreView(down=True, pinged_at=NOW - 0.5), True, False, NOW + 0.5),
    ("down, pinged 1 s ago: ping again", StoreView(down=True, pinged_at=NOW - 1.0), True, True, NOW + 15),
    ("down, a ping in flight: wait for it", StoreView(down=True, pinging=True), True, False, NOW + 15),
    ("down, stack stopped: nothing", StoreView(down=True), False, False, INF),
]


@pytest.mark.parametrize(("name", "view", "running", "pings", "wake"), STORE_TABLE, ids=[r[0] for r in STORE_TABLE])
def test_store_retry(name: str, view: StoreView, running: bool, pings: bool, wake: float) -> None:
    store = PartView("store", PartState.UNHEALTHY if view.down else PartState.READY)
    d = decide(snap(running=running, parts=(*UP, store), needed=("store", *NEEDED), store=view), None, NOW, T)
    assert (A.RETRY_STORE in d.actions) is pings
    assert d.wake_at == pytest.approx(wake)
    if running and view.down:
        assert d.state is S.STARTING and not d.can_verify


TI = replace(T, idle_timeout=10.0)
IDLE_TABLE = [
    # (name, idle view, expected action or None, wake)
    ("active 5 s ago: look again when the quiet period ends", IdleView(last_activity=NOW - 5), None, NOW + 5),
    ("quiet for the whole timeout: count the participants", IdleView(last_activity=NOW - 10), A.COUNT_PARTICIPANTS,
     NOW + 15),
    ("counting: wait for the answer", IdleView(last_activity=NOW - 10, counting=True), None, NOW + 15),
    ("nobody, counted after the quiet period: stop", IdleView(last_activity=NOW - 12, counted_at=NOW - 1, count=0),
     A.IDLE_STOP, NOW + 15),
    ("nobody, but counted before activity resumed: count again",
     IdleView(last_activity=NOW - 10, counted_at=NOW - 20, count=0), A.COUNT_PARTICIPANTS, NOW + 15),
    ("someone in a room: counts as activity", IdleView(last_activity=NOW - 30, counted_at=NOW - 1, count=2), None,
     NOW + 9),
    ("LiveKit did not answer: never stop a stack that may carry a call",
     IdleView(last_activity=NOW - 30, counted_at=NOW - 1, count=None), None, NOW + 9),
]


@pytest.mark.parametrize(("name", "view", "action", "wake"), IDLE_TABLE, ids=[r[0] for r in IDLE_TABLE])
def test_idle_stop(name: str, view: IdleView, action: Action | None, wake: float) -> None:
    d = decide(snap(previous=S.READY, idle=view), passed(1), NOW, TI)
    idle_actions = acts(d) & {A.COUNT_PARTICIPANTS, A.IDLE_STOP}
    assert idle_actions == ({action} if action else set())
    assert d.wake_at == pytest.approx(min(wake, NOW - 1 + TI.refresh))


def test_always_on_never_stops_idle() -> None:
    d = decide(snap(previous=S.READY, idle=IdleView(last_activity=NOW - 1e6, counted_at=NOW, count=0)), passed(1), NOW, T)
    assert not acts(d) & {A.COUNT_PARTICIPANTS, A.IDLE_STOP}


OPEN = TunnelView(opened=True)
APP_UP = PartView("app", PartState.READY)
URL = "https://x.example"
APP_TABLE = [
    # (name, tunnel, app view, app part, expected app actions, state, can verify)
    ("tunnel not open yet: the app waits", TunnelView(opening=True), AppView(), None, set(), S.STARTING, False),
    ("tunnel open: start the app", OPEN, AppView(), None, {A.START_APP}, S.STARTING, False),
    ("start in flight: once", OPEN, AppView(starting=True), None, set(), S.STARTING, False),
    ("started with the public URL: ready", OPEN, AppView(started=True, url=URL), APP_UP, set(), S.READY, True),
    ("the URL moved: restart, and no proof meanwhile", OPEN, AppView(started=True, url="https://old.example"),
     APP_UP, {A.RESTART_APP}, S.DEGRADED, False),
    ("the URL moved, restart_on_url_change off: keep running", OPEN,
     AppView(started=True, url="https://old.example", restart_on_url_change=False), APP_UP, set(), S.READY, True),
    ("restarting: wait for it", OPEN, AppView(started=True, url=URL), PartView("app", PartState.RESTARTING), set(),
     S.DEGRADED, False),
]


@pytest.mark.parametrize(("name", "tunnel", "app", "part", "actions", "state", "verifiable"), APP_TABLE,
                         ids=[r[0] for r in APP_TABLE])
def test_app_start_and_restart_on_a_new_url(name: str, tunnel: TunnelView, app: AppView, part: PartView | None,
                                            actions: set[Action], state: S, verifiable: bool) -> None:
    parts = (*UP, part) if part is not None else UP
    s = snap(previous=S.READY if app.started else S.STARTING, parts=parts, needed=(*NEEDED, "app"), tunnel=tunnel,
             app=app, public_url=URL)
    d = decide(s, passed(1), NOW, T)
    assert acts(d) & {A.START_APP, A.RESTART_APP} == actions
    assert d.state is state
    assert d.can_verify is verifiable and can_verify(s) is verifiable


LAN_TABLE = [
    # (name, lan view, running, action, wake)
    ("auto chose lan: bind", LanView(wanted=True), True, A.BIND_LAN, NOW + 15),
    ("bound and wanted: nothing", LanView(wanted=True, bound=True), True, None, NOW + 15),
    ("auto moved on: withdraw", LanView(bound=True), True, A.UNBIND_LAN, NOW + 15),
    ("could not bind 1 s ago: try again after 5 s", LanView(wanted=True, failed_at=NOW - 1), True, None, NOW + 4),
    ("could not bind 5 s ago: try again", LanView(wanted=True, failed_at=NOW - 5), True, A.BIND_LAN, NOW + 15),
    ("not wanted, not bound: nothing", LanView(), True, None, NOW + 15),
]


@pytest.mark.parametrize(("name", "view", "running", "action", "wake"), LAN_TABLE, ids=[r[0] for r in LAN_TABLE])
def test_lan_listener_follows_the_tunnel(name: str, view: LanView, running: bool, action: Action | None,
                                         wake: float) -> None:
    d = decide(snap(running=running, lan=view), None, NOW, T)
    assert acts(d) & {A.BIND_LAN, A.UNBIND_LAN} == ({action} if action else set())
    assert d.wake_at == pytest.approx(wake)


MEDIA_TABLE = [
    # (name, media view, proof, invalidated_at, runs?)
    ("no rung registered: a no-op", MediaView(), passed(1), float("-inf"), False),
    ("registered, usable proof, never ran: run", MediaView(registered=True), passed(1), float("-inf"), True),
    ("ran after the last part event: not again", MediaView(registered=True, ran_at=NOW - 1), passed(0.5),
     NOW - 2, False),
    ("a part event since it ran: run again", MediaView(registered=True, ran_at=NOW - 3), passed(0.5), NOW - 2, True),
    ("in flight: once", MediaView(registered=True, running=True), passed(1), float("-inf"), False),
    ("no usable proof: wait for one", MediaView(registered=True), failed(0.5), float("-inf"), False),
]


@pytest.mark.parametrize(("name", "view", "proof", "invalidated", "runs"), MEDIA_TABLE, ids=[r[0] for r in MEDIA_TABLE])
def test_media_rung_hook(name: str, view: MediaView, proof: ProofView, invalidated: float, runs: bool) -> None:
    d = decide(snap(previous=S.READY, media=view, invalidated_at=invalidated), proof, NOW, T)
    assert (A.RUN_MEDIA_RUNG in d.actions) is runs


DUE_TABLE = [
    # (name, proof, invalidated_at, due?)
    ("no proof", None, float("-inf"), True),
    ("passed 1 s ago", passed(1), float("-inf"), False),
    ("passed, at the re-run period", passed(7), float("-inf"), True),
    ("passed, but before a part event", passed(1), NOW - 0.5, True),
    ("failed 0.5 s ago: the retry is not due", failed(0.5), float("-inf"), False),
    ("failed 1.1 s ago: retry", failed(1.1), float("-inf"), True),
    ("failed, then a part event: at once", failed(0.5), NOW - 0.1, True),
]


@pytest.mark.parametrize(("name", "proof", "invalidated", "due"), DUE_TABLE, ids=[r[0] for r in DUE_TABLE])
def test_when_the_ladder_is_due_is_decided_once(name: str, proof: ProofView | None, invalidated: float,
                                               due: bool) -> None:
    # ladder_due is what the proof keeper's waiters ask too; decide's RUN_LADDER is the same answer.
    assert ladder_due(proof, invalidated, NOW, T) is due
    assert (A.RUN_LADDER in decide(snap(invalidated_at=invalidated), proof, NOW, T).actions) is due
    assert A.RUN_LADDER not in decide(snap(invalidated_at=invalidated, ladder_running=True), proof, NOW, T).actions


def test_failure_and_can_verify_come_from_the_decision() -> None:
    # What the issuer (failure) and the proof keeper (can_verify) ask: the same rule as the state.
    for name, s, proof, state in STATE_TABLE:
        d = decide(s, proof, NOW, T)
        assert (d.failure is not None) is (state is S.FAILED), name
        assert can_verify(s) is d.can_verify, name
        assert d.can_verify is (state in (S.READY, S.VERIFYING) or (
            state is S.DEGRADED and all(p.state.is_up for p in s.parts))), name


INVALIDATES_TABLE = [
    ("tunnel", PartState.READY, PartState.UNHEALTHY, True),
    ("livekit", PartState.READY, PartState.RESTARTING, True),
    ("app", PartState.READY, PartState.RESTARTING, True),
    ("app", None, PartState.STARTING, True),
    ("tunnel", PartState.STARTING, PartState.READY, False),
    ("livekit", PartState.READY, PartState.EXTERNAL, False),
    ("store", PartState.READY, PartState.UNHEALTHY, False),  # the ladder does not prove the database
    ("storage", PartState.READY, PartState.FAILED, False),
]


@pytest.mark.parametrize(("part", "old", "new", "expected"), INVALIDATES_TABLE)
def test_which_transitions_make_proofs_no_proof(part: str, old: PartState | None, new: PartState,
                                                 expected: bool) -> None:
    assert invalidates(Transition(part, old, new, Text.same("why"), NOW)) is expected


ILLEGAL = [
    (S.STOPPED, S.READY), (S.STOPPED, S.VERIFYING), (S.STOPPED, S.DEGRADED),
    (S.STARTING, S.DEGRADED), (S.VERIFYING, S.DEGRADED),
    (S.READY, S.STARTING), (S.READY, S.VERIFYING),
    (S.DEGRADED, S.STARTING), (S.DEGRADED, S.VERIFYING),
    (S.FAILED, S.DEGRADED),
]


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=[f"{o.value}->{n.value}" for o, n in ILLEGAL])
def test_illegal_transitions_raise(old: S, new: S) -> None:
    with pytest.raises(IllegalTransition) as raised:
        check_transition(old, new)
    assert (raised.value.old, raised.value.new) == (old, new)


def test_legal_transitions_are_exactly_the_rest() -> None:
    for old in S:
        for new in S:
            if (old, new) in ILLEGAL:
                continue
            assert check_transition(old, new) is new
            assert new is old or new in LEGAL[old]


def test_decide_only_makes_legal_transitions() -> None:
    rows = [(r[1], r[2]) for r in STATE_TABLE] + [(snap(previous=b, **c), p) for b, c, p, _ in TRANSITIONS]  # type: ignore[arg-type]
    for s, proof in rows:
        for previous in S:
            p = replace(s, previous=previous)
            check_transition(previous, decide(p, proof, NOW, T).state)
