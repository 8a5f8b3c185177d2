"""aio.wait_set: the one way the package waits for an event with a bound."""

from __future__ import annotations

import asyncio

import pytest

from linkpronto.aio import wait_set


async def test_true_when_set_false_when_the_bound_passes() -> None:
    ev = asyncio.Event()
    assert await wait_set(ev, 0.01) is False
    ev.set()
    assert await wait_set(ev, 0.01) is True
    assert await wait_set(ev, -1) is True  # a bound already passed still reports a set event


async def test_a_cancel_that_comes_with_the_event_is_never_lost() -> None:
    """Python 3.11's wait_for returned instead of raising here; every loop that waited that way
    (status poller, event delivery, media rung, ladder) could outlive the stop that cancelled it."""
    ev = asyncio.Event()
    waiting = asyncio.create_task(wait_set(ev, 30))
    await asyncio.sleep(0)
    ev.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
