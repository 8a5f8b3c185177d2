"""The proof: the latest verification ladder run, kept fresh, and shared by everyone who needs it.

A :class:`ProofSource` is all the link issuer sees of the stack: ``current()`` (a proof that still
counts, or ``None``) and ``wait_fresh(timeout)``. :class:`ProofKeeper` implements it:

- ``refresh()`` is single-flight: a caller that finds a run in flight (started after the last part
  event) shares it; a run that started before the last event is no proof, so a new one follows it.
- ``wait_fresh()`` runs the ladder at once when the parts are up and :func:`linkpronto.machine.ladder_due`
  says a run is due (the same rule the runner's ``RUN_LADDER`` follows), and waits for that run only —
  never for a timer. A failed run is retried by the runner after ``retry``; waiters wait for it.
- ``invalidate()`` marks every earlier proof as no proof (a URL change, a part going down).

The keeper takes ``now`` from an injected clock (``time.monotonic`` by default) and the ladder from
an injected coroutine function, so it is tested without processes or sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from linkpronto.aio import wait_set
from linkpronto.i18n import Text
from linkpronto.links.service import Proof
from linkpronto.machine import ProofView, Timing, ladder_due, usable
from linkpronto.verify import LadderResult

_NO_FIX = Text("", "")
LadderRun = Callable[[], Awaitable[tuple[LadderResult, str | None]]]


class ProofSource(Protocol):
    """What a link issuer needs to know about the stack: is there a proof, and wait for one."""

    def current(self) -> Proof | None: ...

    async def wait_fresh(self, timeout: float) -> Proof | None: ...  # noqa: ASYNC109 - a deadline, by design


@dataclass(slots=True)
class _Run:
    result: LadderResult
    base_url: str | None
    finished_at: float
    promoted: bool = False
    proof: Proof | None = None


class ProofKeeper:
    def __init__(
        self,
        run: LadderRun,
        *,
        max_age: float,
        can_verify: Callable[[], bool] = lambda: True,
        gave_up: Callable[[], bool] = lambda: False,
        on_result: Callable[[], None] = lambda: None,
        clock: Callable[[], float] | None = None,
        timing: Timing | None = None,
    ) -> None:
        self._run_ladder = run
        self.max_age = max_age
        # The runner passes its own timing; alone (tests), a proof is re-run once it no longer counts.
        self._timing = timing or Timing(max_age=max_age, refresh=max_age)
        self._can_verify = can_verify
        self._gave_up = gave_up
        self._on_result = on_result
        self._clock = clock or time.monotonic
        self._last: _Run | None = None
        self.invalidated_at = float("-inf")
        self._inflight: asyncio.Task[_Run] | None = None
        self._inflight_started = float("-inf")
        self._changed = asyncio.Event()
        self.runs = 0

    # -- what the machine reads -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    @property
    def latest(self) -> LadderResult | None:
        return self._last.result if self._last is not None else None

    @property
    def stale(self) -> bool:
        """The latest result predates the last part event (shown, but no longer proof)."""
        return self._last is not None and self._last.result.checked_at <= self.invalidated_at

    def view(self) -> ProofView | None:
        last = self._last
        if last is None:
            return None
        r = last.result
        bad = r.first_failure()
        media = r.media_check()
        return ProofView(
            ok=r.ok and last.base_url is not None,
            started_at=r.checked_at,
            finished_at=last.finished_at,
            failure=(bad.name, bad.detail, bad.fix) if bad is not None else None,
            same_network_only=(media.fix or _NO_FIX) if media is not None and r.media and r.media.reach == "same-network"
            else None,
            promoted=last.promoted,
        )

    # -- ProofSource ------------------------------------------------------------------------------
    def current(self) -> Proof | None:
        last = self._last
        if last is None or last.base_url is None:
            return None
        if not usable(self.view(), self.invalidated_at, self._clock(), self.max_age):
            return None
        if last.proof is None:
            verified = datetime.fromtimestamp(last.result.wall_time, tz=UTC)
            checks = json.dumps([c.to_stored() for c in last.result.checks])  # both languages
            last.proof = Proof(verified, last.base_url, checks)
        return last.proof

    async def wait_fresh(self, timeout: float) -> Proof | None:  # noqa: ASYNC109 - a deadline, by design
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            proof = self.current()
            if proof is not None:
                return proof
            if self._gave_up():
                return None
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            changed = self._changed
            if self._can_verify() and (self.running or self._due()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.refresh()), remaining)
                if self.current() is not None or self._gave_up():
                    continue
                if self._last is not None and self._last.result.ok:
                    continue  # passed but invalidated during the run: run again at once
            # A failed run (the runner retries it soon) or parts not up: wait for something to change.
            await wait_set(changed, deadline - loop.time())

    def _due(self) -> bool:
        return ladder_due(self.view(), self.invalidated_at, self._clock(), self._timing)

    # -- running the ladder -----------------------------------------------------------------------
    async def refresh(self) -> LadderResult:
        """Run the ladder, or share the run in flight when it started after the last part event."""
        while True:
            task = self._inflight
            if task is not None and not task.done():
                if self._inflight_started > self.invalidated_at:
                    return (await asyncio.shield(task)).result
                with contextlib.suppress(Exception):
                    await asyncio.shield(task)  # a run that is already stale: let it end, then run again
                continue
            self._inflight_started = self._clock()
            task = self._inflight = asyncio.create_task(self._one_run(), name="verification-ladder")
            return (await asyncio.shield(task)).result

    async def _one_run(self) -> _Run:
        result, base_url = await self._run_ladder()
        self.runs += 1
        run = _Run(result, base_url, self._clock())
        self._last = run
        self._notify()
        return run

    def mark_promoted(self, result: LadderResult) -> None:
        if self._last is not None and self._last.result is result:
            self._last.promoted = True

    def invalidate(self) -> None:
        self.invalidated_at = self._clock()
        self._notify()

    def changed(self) -> None:
        """Something the keeper's predicates depend on changed (a part, the stack's state)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _notify(self) -> None:
        self.changed()
        self._on_result()

    def reset(self) -> None:
        self._last = None
