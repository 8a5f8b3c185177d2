"""The status stream's wait: a presence change first, a status trigger is never lost, a timeout is None."""

from __future__ import annotations

import asyncio
from typing import Any

from linkpronto.events.hub import next_presence, presence_sse


async def test_presence_first_and_the_status_trigger_is_kept() -> None:
    presence: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    status: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    assert await next_presence(presence, status, 0.01) is None  # nothing: the heartbeat is due
    status.put_nowait({"state": "ready"})
    assert await next_presence(presence, status, 1) is None  # a status change: re-render the status
    assert status.empty()
    presence.put_nowait({"id": "evt_1"})
    status.put_nowait({"state": "ready"})
    assert await next_presence(presence, status, 0) == {"id": "evt_1"}  # even with no time left
    assert not status.empty()  # the status trigger waits for the next round

    async def later() -> None:
        await asyncio.sleep(0.05)
        presence.put_nowait({"id": "evt_2"})

    status.get_nowait()
    task = asyncio.create_task(later())
    assert await next_presence(presence, status, 5) == {"id": "evt_2"}
    await task


def test_presence_sse_frame() -> None:
    assert presence_sse({"id": "evt_1"}) == b'event: presence\ndata: {"id":"evt_1"}\n\n'
