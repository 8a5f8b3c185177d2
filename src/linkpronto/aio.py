"""Small asyncio helpers the whole package shares."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_set(event: asyncio.Event, within: float) -> bool:
    """Wait up to ``within`` seconds for ``event``; True when it was set.

    ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` swallows a cancel that arrives
    as the event is set, so a loop waiting this way could outlive the ``stop`` that cancelled it.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, within)):
            await event.wait()
            return True
    return event.is_set()
