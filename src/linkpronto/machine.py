"""The stack's decisions, with no I/O and no clock of its own (the sans-I/O style of h11's ``_state.py``).

:func:`decide` looks at a :class:`Snapshot` of the parts, the latest proof (:class:`ProofView`) and
``now``, and returns a :class:`Decision`: the stack's state, why, the problems to show, the actions
to carry out and when to look again. The runner (:class:`linkpronto.stack.Stack`) owns the loop and
does the I/O; tests feed tables of snapshots and read decisions, in milliseconds.

::

    not running ─────────────────────────────────────────────> stopped
    a stack failure, or a part that failed for good ─────────> failed
    a needed part not up ──── was ready/degraded ────────────> degraded     else starting
    parts up ── proof usable (ok, younger than max_age and
                 newer than the last part event) ────────────> ready
             ── proof failed ─── was ready/degraded ─────────> degraded     else verifying
             ── no usable proof yet ── was ready/degraded ───> (unchanged)  else verifying

Proof timing (``max_age`` > ``refresh``, enforced by the settings)::

    0 ───────── refresh ───────── max_age ──>  age of the proof (from its run's start)
    usable ──────────────────────────────────┤ stale
              re-run from here (RunLadder), so a usable proof is always there while up
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from linkpronto.errors import (
    InsecureOrigin,
    LinkprontoError,
    MediaSameNetworkOnly,
    check_failed,
)
from linkpronto.i18n import EMPTY, Text
from linkpronto.schema import PartState, StackState

#: How long a past event (e.g. TUNNEL_URL_CHANGED) stays in the problems list.
EVENT_HORIZON_S = 600.0

_WAS_READY = (StackState.READY, StackState.DEGRADED)


@dataclass(frozen=True, slots=True)
class Timing:
    max_age: float  # a passed ladder counts as proof for this long (verify.max_age)
    refresh: float  # re-run the ladder when the proof is this old (verify.interval < max_age)
    retry: float = 1.0  # after a failed run, run again this soon
    heartbeat: float = 15.0  # look again at least this often


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
class Snapshot:
    running: bool
    previous: StackState
    parts: tuple[PartView, ...] = ()
    needed: tuple[str, ...] = ()
    failure: LinkprontoError | None = None  # the stack's own (bad keys, tunnel auth...)
    invalidated_at: float = float("-inf")  # the last part event: older proofs are no proof
    ladder_running: bool = False
    https: bool | None = None  # the tunnel's fact; None while there is no tunnel
    public_url: str | None = None
    events: tuple[tuple[float, LinkprontoError], ...] = ()


class Action(enum.Enum):
    RUN_LADDER = "run_ladder"  # run the verification ladder now
    PROMOTE = "promote"  # make every ``preparing`` link ready under the current proof


@dataclass(frozen=True, slots=True)
class Decision:
    state: StackState
    reason: Text
    problems: tuple[LinkprontoError, ...]
    actions: tuple[Action, ...] = ()
    wake_at: float = float("inf")
    proof_usable: bool = False


NO_REASON = Text("", "")


def usable(proof: ProofView | None, invalidated_at: float, now: float, max_age: float) -> bool:
    """A proof counts when it passed, is at most ``max_age`` old and is newer than the last part event."""
    return (
        proof is not None
        and proof.ok
        and proof.started_at > invalidated_at
        and now - proof.started_at <= max_age
    )


def decide(snap: Snapshot, proof: ProofView | None, now: float, timing: Timing) -> Decision:
    problems = _problems(snap, proof, now)
    heartbeat = now + timing.heartbeat
    if not snap.running:
        return Decision(StackState.STOPPED, NO_REASON, problems)
    if snap.failure is not None:
        return Decision(StackState.FAILED, snap.failure.text, problems)
    for part in snap.parts:
        if part.state is PartState.FAILED and part.error is not None:
            return Decision(StackState.FAILED, part.error.text, problems)
    by_name = {p.name: p for p in snap.parts}
    was_ready = snap.previous in _WAS_READY
    for name in snap.needed:
        needed = by_name.get(name)
        if needed is None or not needed.state.is_up:
            state = StackState.DEGRADED if was_ready else StackState.STARTING
            return Decision(state, _waiting_for(name, needed), problems, (), heartbeat)

    fresh = usable(proof, snap.invalidated_at, now, timing.max_age)
    actions: list[Action] = []
    if not snap.ladder_running and _due(proof, snap.invalidated_at, now, timing):
        actions.append(Action.RUN_LADDER)
    if fresh:
        assert proof is not None
        if not proof.promoted:
            actions.append(Action.PROMOTE)
        # While a run is in flight its end wakes the runner; else wake when the re-run is due.
        running = snap.ladder_running or Action.RUN_LADDER in actions
        wake = heartbeat if running else min(heartbeat, proof.started_at + timing.refresh)
        return Decision(StackState.READY, NO_REASON, problems, tuple(actions), wake, True)
    failed_run = proof is not None and not proof.ok and proof.started_at > snap.invalidated_at
    if failed_run:
        assert proof is not None
        state = StackState.DEGRADED if was_ready else StackState.VERIFYING
        wake = heartbeat if snap.ladder_running else min(heartbeat, proof.finished_at + timing.retry)
        return Decision(state, _failed_reason(proof), problems, tuple(actions), wake)
    state = snap.previous if was_ready else StackState.VERIFYING
    return Decision(state, VERIFYING_REASON, problems, tuple(actions), heartbeat)


def _due(proof: ProofView | None, invalidated_at: float, now: float, timing: Timing) -> bool:
    """Whether the ladder must run now (parts are up and no run is in flight)."""
    if proof is None or proof.started_at <= invalidated_at:
        return True
    if proof.ok:
        return now - proof.started_at >= timing.refresh
    return now - proof.finished_at >= timing.retry


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
