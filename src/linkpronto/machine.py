"""The stack's decisions, with no I/O and no clock of its own (the sans-I/O style of h11's ``_state.py``).

:func:`decide` is the ONLY decider. It looks at a :class:`Snapshot` of the parts (and of the work in
flight), the latest proof (:class:`ProofView`) and ``now``, and returns a :class:`Decision`: the
stack's state, why, the problems to show, the :class:`Action` s to carry out and when to look again
(``wake_at``). The runner (:class:`linkpronto.stack.Stack`) only carries actions out and feeds back
what happened; tests feed tables of snapshots and read decisions, in milliseconds
(``tests/test_machine.py``: one table row per rule).

Parts report :class:`Transition` s (``part, old, new, why``) onto the runner's one queue, like
honcho's manager and supervisor's ``ProcessStateEvent``; :func:`invalidates` says which of them make
every proof so far no proof.

::

    not running ─────────────────────────────────────────────> stopped
    a stack failure, or a part that failed for good ─────────> failed
    was stopped (start()) ───────────────────────────────────> starting
    a needed part not up ──── was ready/degraded ────────────> degraded     else starting
    parts up ── proof usable (ok, younger than max_age and
                 newer than the last part event) ────────────> ready
             ── proof failed ─── was ready/degraded ─────────> degraded     else verifying
             ── no usable proof yet ── was ready/degraded ───> (unchanged)  else verifying

Any other change of state is a bug and raises :class:`IllegalTransition` (:data:`LEGAL`).

Proof timing (``max_age`` > ``refresh``, enforced by the settings)::

    0 ───────── refresh ───────── max_age ──>  age of the proof (from its run's start)
    usable ──────────────────────────────────┤ stale
              re-run from here (RunLadder), so a usable proof is always there while up

The other rules (each a function below, each a table in the tests):

- open the tunnel once started; after ``TUNNEL_UNREACHABLE`` retry with back-off (1 s doubling to
  30 s); any other tunnel error fails the stack (:func:`_tunnel_rules`);
- start the app once the tunnel is open; a new public URL restarts it (``app.restart_on_url_change``)
  and, from that moment, the app counts as not up (no proof while it has the old URL) (:func:`_app_rules`);
- a links database that does not answer is pinged every ``store_retry`` seconds (:func:`_store_rules`);
- ``auto`` that chose ``lan`` binds the LAN listener, and withdraws it when it moves (:func:`_lan_rules`);
- on-demand: after ``idle_timeout`` with no activity, count the participants; nobody (a count of 0
  taken after the quiet period) stops the stack; someone, or no answer, counts as activity (:func:`_idle_rules`);
- the media rung (a hook, no-op until one is registered) runs under a usable proof newer than the last
  part event (:func:`_media_rules`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from linkpronto.errors import (
    InsecureOrigin,
    LinkprontoError,
    MediaSameNetworkOnly,
    TunnelUnreachable,
    check_failed,
)
from linkpronto.i18n import EMPTY, Text
from linkpronto.schema import PartState, StackState

#: How long a past event (e.g. TUNNEL_URL_CHANGED) stays in the problems list.
EVENT_HORIZON_S = 600.0

_WAS_READY = (StackState.READY, StackState.DEGRADED)
_S = StackState

#: Every change of the stack's state that :func:`decide` may make (staying put is always legal).
LEGAL: dict[StackState, frozenset[StackState]] = {
    _S.STOPPED: frozenset({_S.STARTING, _S.FAILED}),
    _S.STARTING: frozenset({_S.VERIFYING, _S.READY, _S.FAILED, _S.STOPPED}),
    _S.VERIFYING: frozenset({_S.STARTING, _S.READY, _S.FAILED, _S.STOPPED}),
    _S.READY: frozenset({_S.DEGRADED, _S.FAILED, _S.STOPPED}),
    _S.DEGRADED: frozenset({_S.READY, _S.FAILED, _S.STOPPED}),
    _S.FAILED: frozenset({_S.STOPPED, _S.STARTING, _S.VERIFYING, _S.READY}),
}


class IllegalTransition(RuntimeError):
    """The stack was asked to go from one state to another that :data:`LEGAL` does not allow (a bug)."""

    def __init__(self, old: StackState, new: StackState) -> None:
        super().__init__(f"illegal stack transition {old.value} -> {new.value}")
        self.old, self.new = old, new


def check_transition(old: StackState, new: StackState) -> StackState:
    """``new`` when the stack may go there from ``old``; raises :class:`IllegalTransition` otherwise."""
    if new is not old and new not in LEGAL[old]:
        raise IllegalTransition(old, new)
    return new


@dataclass(frozen=True, slots=True)
class Timing:
    max_age: float  # a passed ladder counts as proof for this long (verify.max_age)
    refresh: float  # re-run the ladder when the proof is this old (verify.interval < max_age)
    retry: float = 1.0  # after a failed run, run again this soon
    heartbeat: float = 15.0  # look again at least this often
    tunnel_retry: float = 1.0  # first wait after TUNNEL_UNREACHABLE; doubles per failure...
    tunnel_retry_max: float = 30.0  # ...up to this
    store_retry: float = 1.0  # ping a links database that does not answer this often
    lan_retry: float = 5.0  # try binding the LAN listener again after a failure
    idle_timeout: float | None = None  # on-demand: stop after this long idle (None: always-on)


# -- what the parts report ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Transition:
    """A part changed: pushed onto the runner's queue (``old`` is None on a part's first report)."""

    part: str
    old: PartState | None
    new: PartState
    why: Text = EMPTY
    at: float = 0.0


#: The parts a ladder run proves: one of them not up makes every earlier proof no proof.
PROOF_PARTS = frozenset({"livekit", "tunnel", "app"})


def invalidates(t: Transition) -> bool:
    """Whether a transition makes every proof so far no proof (a proved part is not up)."""
    return t.part in PROOF_PARTS and not t.new.is_up


def tunnel_recoverable(error: LinkprontoError) -> bool:
    """``TUNNEL_UNREACHABLE`` is retried with back-off; any other tunnel error will not recover unattended."""
    return error.code == TunnelUnreachable.code


# -- the snapshot -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PartView:
    name: str
    state: PartState
    detail: Text = EMPTY
    error: LinkprontoError | None = None


@dataclass(frozen=True, slots=True)
class ProofView:
    """The latest ladder run, as the machine needs it."""

    ok: bool
    started_at: float  # the proof is as old as its run's start
    finished_at: float
    failure: tuple[str, Text, Text | None] | None = None  # first failed required check: name, detail, fix
    same_network_only: Text | None = None  # the media check's fix when only this network gets media
    promoted: bool = False  # links waiting in ``preparing`` were already made ready under it


@dataclass(frozen=True, slots=True)
class TunnelView:
    """Opening the tunnel: attempts so far and how the last one ended."""

    opened: bool = False
    opening: bool = False
    failures: int = 0  # failed attempts since the last success
    failed_at: float = float("-inf")
    error: LinkprontoError | None = None  # the last attempt's error


@dataclass(frozen=True, slots=True)
class AppView:
    """The supervised app (``app.command``), when configured."""

    started: bool = False  # started since the stack started (the part exists)
    starting: bool = False  # the start action is in flight
    url: str | None = None  # the public URL its environment has (or is being restarted with)
    restart_on_url_change: bool = True


@dataclass(frozen=True, slots=True)
class StoreView:
    down: bool = False  # the links database does not answer
    pinging: bool = False
    pinged_at: float = float("-inf")


@dataclass(frozen=True, slots=True)
class LanView:
    """``auto``'s LAN listener (present only when ``auto`` binds loopback)."""

    wanted: bool = False  # the provider in use binds the LAN (``auto`` chose ``lan``)
    bound: bool = False
    failed_at: float = float("-inf")


@dataclass(frozen=True, slots=True)
class IdleView:
    """On-demand mode: the last activity and the last participant count."""

    last_activity: float = float("-inf")
    counting: bool = False
    counted_at: float = float("-inf")
    count: int | None = None  # None: LiveKit did not answer (counts as someone there)


@dataclass(frozen=True, slots=True)
class MediaView:
    """The media rung (a hook: :attr:`registered` is False until one is installed)."""

    registered: bool = False
    running: bool = False
    ran_at: float = float("-inf")  # when its last run started
    result: object = None  # the rung's own result, shown as-is


@dataclass(frozen=True, slots=True)
class Snapshot:
    running: bool
    previous: StackState
    parts: tuple[PartView, ...] = ()
    needed: tuple[str, ...] = ()
    failure: LinkprontoError | None = None  # the stack's own (bad keys, LiveKit could not start...)
    invalidated_at: float = float("-inf")  # the last part event: older proofs are no proof
    ladder_running: bool = False
    https: bool | None = None  # the tunnel's fact; None while there is no tunnel
    public_url: str | None = None
    events: tuple[tuple[float, LinkprontoError], ...] = ()
    # The work the runner carries out; None = not managed here (nothing to decide about it).
    tunnel: TunnelView | None = None
    app: AppView | None = None
    store: StoreView = field(default_factory=StoreView)
    lan: LanView | None = None
    idle: IdleView | None = None
    media: MediaView = field(default_factory=MediaView)


class Action(enum.Enum):
    """What the runner carries out (``Stack._handlers`` maps each to one method)."""

    RUN_LADDER = "run_ladder"  # run the verification ladder now
    PROMOTE = "promote"  # make every ``preparing`` link ready under the current proof
    OPEN_TUNNEL = "open_tunnel"  # open the tunnel (first time, or a retry after TUNNEL_UNREACHABLE)
    START_APP = "start_app"  # start the supervised app (the tunnel is open)
    RESTART_APP = "restart_app"  # restart the app with the current public URL
    RETRY_STORE = "retry_store"  # ping the links database that did not answer
    BIND_LAN = "bind_lan"  # serve the public app on the LAN address too
    UNBIND_LAN = "unbind_lan"  # withdraw it
    COUNT_PARTICIPANTS = "count_participants"  # on-demand: is anybody in a room?
    IDLE_STOP = "idle_stop"  # on-demand: idle and nobody in a room: stop the stack
    RUN_MEDIA_RUNG = "run_media_rung"  # the media rung's hook (no-op until registered)


@dataclass(frozen=True, slots=True)
class Decision:
    state: StackState
    reason: Text
    problems: tuple[LinkprontoError, ...]
    actions: tuple[Action, ...] = ()
    wake_at: float = float("inf")
    proof_usable: bool = False
    failure: LinkprontoError | None = None  # what failed the stack (state FAILED)
    can_verify: bool = False  # every needed part is up: a ladder run may prove the stack


NO_REASON = Text("", "")


def usable(proof: ProofView | None, invalidated_at: float, now: float, max_age: float) -> bool:
    """A proof counts when it passed, is at most ``max_age`` old and is newer than the last part event."""
    return (
        proof is not None
        and proof.ok
        and proof.started_at > invalidated_at
        and now - proof.started_at <= max_age
    )


def ladder_due(proof: ProofView | None, invalidated_at: float, now: float, timing: Timing) -> bool:
    """Whether the ladder must run now, given that the parts are up and no run is in flight. The one
    place that says so: the runner (``RUN_LADDER``) and the proof keeper's waiters both ask it."""
    if proof is None or proof.started_at <= invalidated_at:
        return True
    if proof.ok:
        return now - proof.started_at >= timing.refresh
    return now - proof.finished_at >= timing.retry


class _Plan:
    """Actions and wake-ups collected while deciding."""

    def __init__(self, now: float, timing: Timing) -> None:
        self.actions: list[Action] = []
        self.wake = now + timing.heartbeat

    def do(self, action: Action) -> None:
        self.actions.append(action)

    def at(self, when: float) -> None:
        self.wake = min(self.wake, when)


def decide(snap: Snapshot, proof: ProofView | None, now: float, timing: Timing) -> Decision:
    problems = _problems(snap, proof, now)
    plan = _Plan(now, timing)
    _lan_rules(snap, now, timing, plan)
    if not snap.running:
        return Decision(StackState.STOPPED, NO_REASON, problems, tuple(plan.actions))
    _store_rules(snap, now, timing, plan)
    failure = _failure(snap)
    if failure is not None:
        return Decision(StackState.FAILED, failure.text, problems, tuple(plan.actions), plan.wake, failure=failure)
    _tunnel_rules(snap, now, timing, plan)
    stale_app = _app_rules(snap, plan)
    _idle_rules(snap, now, timing, plan)
    was_ready = snap.previous in _WAS_READY
    waiting = _waiting(snap, stale_app)
    if snap.previous is StackState.STOPPED:  # start(): every start is seen as starting first
        return Decision(StackState.STARTING, STARTING_REASON, problems, tuple(plan.actions), plan.wake)
    if waiting is not None:
        state = StackState.DEGRADED if was_ready else StackState.STARTING
        return Decision(state, waiting, problems, tuple(plan.actions), plan.wake)

    fresh = usable(proof, snap.invalidated_at, now, timing.max_age)
    if not snap.ladder_running and ladder_due(proof, snap.invalidated_at, now, timing):
        plan.do(Action.RUN_LADDER)
    if fresh:
        assert proof is not None
        if not proof.promoted:
            plan.do(Action.PROMOTE)
        _media_rules(snap, plan)
        # While a run is in flight its end wakes the runner; else wake when the re-run is due.
        if not (snap.ladder_running or Action.RUN_LADDER in plan.actions):
            plan.at(proof.started_at + timing.refresh)
        return Decision(StackState.READY, NO_REASON, problems, tuple(plan.actions), plan.wake, True, can_verify=True)
    failed_run = proof is not None and not proof.ok and proof.started_at > snap.invalidated_at
    if failed_run:
        assert proof is not None
        state = StackState.DEGRADED if was_ready else StackState.VERIFYING
        if not snap.ladder_running:
            plan.at(proof.finished_at + timing.retry)
        return Decision(state, _failed_reason(proof), problems, tuple(plan.actions), plan.wake, can_verify=True)
    state = snap.previous if was_ready else StackState.VERIFYING
    return Decision(state, VERIFYING_REASON, problems, tuple(plan.actions), plan.wake, can_verify=True)


def can_verify(snap: Snapshot) -> bool:
    """Running, not failed, every needed part up (and the app's environment current)."""
    if not snap.running or _failure(snap) is not None:
        return False
    return _waiting(snap, _app_stale(snap)) is None


# -- the rules ------------------------------------------------------------------------------------------------
def _failure(snap: Snapshot) -> LinkprontoError | None:
    """What failed the stack for good: its own failure, a tunnel error that is not retried, a failed part."""
    if snap.failure is not None:
        return snap.failure
    t = snap.tunnel
    if t is not None and not t.opened and not t.opening and t.error is not None and not tunnel_recoverable(t.error):
        return t.error
    for part in snap.parts:
        if part.state is PartState.FAILED and part.error is not None:
            return part.error
    return None


def _waiting(snap: Snapshot, stale_app: bool) -> Text | None:
    """Why the stack waits for a needed part (None: every needed part is up)."""
    by_name = {p.name: p for p in snap.parts}
    for name in snap.needed:
        part = by_name.get(name)
        if part is None or not part.state.is_up:
            return _waiting_for(name, part)
        if name == "app" and stale_app:
            return Text.same("app: ") + APP_RESTARTING
    return None


APP_RESTARTING = Text("reiniciando com o novo endereço público", "restarting with the new public address")


def tunnel_retry_at(t: TunnelView, timing: Timing) -> float:
    """When to open the tunnel again after ``t.failures`` unreachable attempts (1, 2, 4 ... 30 s)."""
    if t.failures == 0:
        return float("-inf")
    delay: float = min(timing.tunnel_retry * 2.0 ** (t.failures - 1), timing.tunnel_retry_max)
    return t.failed_at + delay


def _tunnel_rules(snap: Snapshot, now: float, timing: Timing, plan: _Plan) -> None:
    t = snap.tunnel
    if t is None or t.opened or t.opening:
        return
    if t.error is not None and not tunnel_recoverable(t.error):
        return  # failed for good (see _failure)
    due = tunnel_retry_at(t, timing)
    if now >= due:
        plan.do(Action.OPEN_TUNNEL)
    else:
        plan.at(due)


def _app_stale(snap: Snapshot) -> bool:
    app = snap.app
    return bool(
        app is not None and app.started and app.restart_on_url_change and snap.public_url
        and snap.public_url != app.url
    )


def _app_rules(snap: Snapshot, plan: _Plan) -> bool:
    """Start the app once the tunnel is open; restart it on a new public URL. Returns "the app is stale"."""
    app, t = snap.app, snap.tunnel
    if app is None:
        return False
    if not app.started:
        if not app.starting and (t is None or t.opened):
            plan.do(Action.START_APP)
        return False
    stale = _app_stale(snap)
    if stale:
        plan.do(Action.RESTART_APP)
    return stale


def _store_rules(snap: Snapshot, now: float, timing: Timing, plan: _Plan) -> None:
    s = snap.store
    if not s.down or s.pinging:
        return
    due = s.pinged_at + timing.store_retry
    if now >= due:
        plan.do(Action.RETRY_STORE)
    else:
        plan.at(due)


def _lan_rules(snap: Snapshot, now: float, timing: Timing, plan: _Plan) -> None:
    lan = snap.lan
    if lan is None:
        return
    if lan.wanted and not lan.bound:
        due = lan.failed_at + timing.lan_retry
        if now >= due:
            plan.do(Action.BIND_LAN)
        else:
            plan.at(due)
    elif lan.bound and not lan.wanted:
        plan.do(Action.UNBIND_LAN)


def _idle_rules(snap: Snapshot, now: float, timing: Timing, plan: _Plan) -> None:
    idle, timeout = snap.idle, timing.idle_timeout
    if idle is None or timeout is None:
        return
    # A count that found someone (or got no answer: nobody can tell the rooms are empty, and a stack
    # that may carry a call is never stopped) counts as activity.
    busy_at = idle.counted_at if idle.count is None or idle.count > 0 else float("-inf")
    due = max(idle.last_activity, busy_at) + timeout
    if now < due:
        plan.at(due)
    elif idle.count == 0 and idle.counted_at >= due:
        plan.do(Action.IDLE_STOP)
    elif not idle.counting:
        plan.do(Action.COUNT_PARTICIPANTS)


def _media_rules(snap: Snapshot, plan: _Plan) -> None:
    """Under a usable proof: run the registered media rung once per part event (none: nothing)."""
    m = snap.media
    if m.registered and not m.running and m.ran_at <= snap.invalidated_at:
        plan.do(Action.RUN_MEDIA_RUNG)


STARTING_REASON = Text("iniciando as partes", "starting the parts")
VERIFYING_REASON = Text("executando a verificação", "running the verification ladder")


def _waiting_for(name: str, part: PartView | None) -> Text:
    if part is None:
        return Text(f"{name}: ainda não iniciado", f"{name}: not started yet")
    if part.detail.en:
        return Text.same(f"{name}: ") + part.detail
    return Text.same(f"{name}: {part.state.value}")


def _failed_reason(proof: ProofView) -> Text:
    if proof.failure is None:
        return Text("a verificação falhou", "verification failed")
    name, detail, _ = proof.failure
    return Text.same(f"{name}: ") + detail


def _problems(snap: Snapshot, proof: ProofView | None, now: float) -> tuple[LinkprontoError, ...]:
    out: list[LinkprontoError] = []
    if snap.failure is not None:
        out.append(snap.failure)
    t = snap.tunnel
    if t is not None and not t.opened and t.error is not None:
        out.append(t.error)
    out.extend(p.error for p in snap.parts if p.error is not None and p.error is not snap.failure)
    if proof is not None and not proof.ok and proof.failure is not None:
        name, detail, fix = proof.failure
        out.append(check_failed(name, detail, fix))
    if proof is not None and proof.same_network_only is not None:
        out.append(MediaSameNetworkOnly.build(proof.same_network_only))
    if snap.https is False and snap.public_url:
        out.append(InsecureOrigin())
    out.extend(err for at, err in snap.events if at >= now - EVENT_HORIZON_S)
    return _unique(out)


def _unique(errors: Sequence[LinkprontoError]) -> tuple[LinkprontoError, ...]:
    seen: set[tuple[str, str]] = set()
    out: list[LinkprontoError] = []
    for err in errors:
        key = (err.code, err.text.en)
        if key not in seen:
            seen.add(key)
            out.append(err)
    return tuple(out)


@dataclass(slots=True)
class Events:
    """A bounded list of past events worth showing for a while (URL changed)."""

    items: list[tuple[float, LinkprontoError]] = field(default_factory=list)
    limit: int = 10

    def add(self, at: float, error: LinkprontoError) -> None:
        self.items.append((at, error))
        del self.items[: -self.limit]

    def snapshot(self) -> tuple[tuple[float, LinkprontoError], ...]:
        return tuple(self.items)


__all__ = [
    "LEGAL", "Action", "AppView", "Decision", "Events", "IdleView", "IllegalTransition", "LanView", "MediaView",
    "PartView", "ProofView", "Snapshot", "StoreView", "Timing", "Transition", "TunnelView", "can_verify",
    "check_transition", "decide", "invalidates", "ladder_due", "tunnel_recoverable", "usable",
]
