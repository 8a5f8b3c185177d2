"""The proof keeper: single-flight ladder runs, a stale proof re-run at once, waits bounded by one run.

The ladder is a hand-written fake (an ``asyncio.Event`` decides when a run ends); no process, no
socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from linkpronto.i18n import Text
from linkpronto.proof import ProofKeeper
from linkpronto.verify import Check, LadderResult


class FakeLadder:
    def __init__(self, ok: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.ok = ok
        self.clock = clock
        self.started = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> tuple[LadderResult, str | None]:
        self.started += 1
        t0 = self.clock()
        await self.release.wait()
        check = Check("public_probe", self.ok, 1.0, Text.same("" if self.ok else "HTTP 502"))
        return LadderResult((check,), t0, time.time()), "https://x.example"


async def test_concurrent_creates_share_one_run() -> None:
    ladder = FakeLadder()
    ladder.release.clear()
    keeper = ProofKeeper(ladder, max_age=10)
    waiters = [asyncio.create_task(keeper.wait_fresh(5)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert ladder.started == 1 and keeper.running
    ladder.release.set()
    proofs = await asyncio.gather(*waiters)
    assert all(p is not None and p.base_url == "https://x.example" for p in proofs)
    assert ladder.started == 1
    assert len({id(p) for p in proofs}) == 1  # one Proof object (its JSON made once)


async def test_a_fresh_proof_needs_no_run() -> None:
    ladder = FakeLadder()
    keeper = ProofKeeper(ladder, max_age=10)
    await keeper.refresh()
    assert keeper.current() is not None
    assert await keeper.wait_fresh(1) is keeper.current()
    assert ladder.started == 1


async def test_a_stale_proof_is_rerun_at_once() -> None:
    now = [100.0]
    ladder = FakeLadder(clock=lambda: now[0])
    keeper = ProofKeeper(ladder, max_age=10, clock=lambda: now[0])
    await keeper.refresh()
    now[0] += 10.0
    assert keeper.current() is not None  # max_age itself still counts
    now[0] += 0.5  # the proof aged out of max_age
    assert keeper.current() is None
    proof = await asyncio.wait_for(keeper.wait_fresh(5), 1)
    assert proof is not None and ladder.started == 2


async def test_a_run_that_started_before_an_event_is_followed_by_a_new_one() -> None:
    ladder = FakeLadder()
    ladder.release.clear()
    keeper = ProofKeeper(ladder, max_age=10)
    first = asyncio.create_task(keeper.refresh())
    await asyncio.sleep(0.01)
    keeper.invalidate()  # e.g. the URL changed while the ladder ran
    waiter = asyncio.create_task(keeper.wait_fresh(5))
    await asyncio.sleep(0.01)
    ladder.release.set()
    await first
    proof = await waiter
    assert proof is not None
    assert ladder.started == 2  # the stale run was not taken as proof


async def test_no_run_while_the_parts_are_down_and_the_wait_is_bounded() -> None:
    ladder = FakeLadder()
    keeper = ProofKeeper(ladder, max_age=10, can_verify=lambda: False)
    # The wait returns (its own 0.2 s bound), never hangs: wait_for is only a guard against a hang.
    assert await asyncio.wait_for(keeper.wait_fresh(0.2), 10) is None
    assert ladder.started == 0


async def test_gave_up_ends_the_wait_at_once() -> None:
    keeper = ProofKeeper(FakeLadder(), max_age=10, can_verify=lambda: False, gave_up=lambda: True)
    assert await asyncio.wait_for(keeper.wait_fresh(30), 1) is None


async def test_a_failed_run_is_not_repeated_by_every_waiter_but_its_retry_is_awaited() -> None:
    ladder = FakeLadder(ok=False)
    keeper = ProofKeeper(ladder, max_age=10)
    await keeper.refresh()
    waiter = asyncio.create_task(keeper.wait_fresh(5))
    await asyncio.sleep(0.05)
    assert ladder.started == 1 and not waiter.done()  # waits for the runner's retry
    ladder.ok = True
    await keeper.refresh()  # the runner's retry passes
    assert await asyncio.wait_for(waiter, 1) is not None
