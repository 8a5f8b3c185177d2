"""Retention of health-related data: links that ended are deleted after ``links.retention``.

A link has *ended* when it expired, was revoked or was used up; it is deleted — with its device
check, which lives in the same row — once it ended more than ``links.retention`` ago (default 30
days). Links that can still be used are never touched. A running linkpronto purges every
``links.purge_interval``; ``linkpronto link purge --older-than 30d`` does it on demand. Logs carry
counts only: never a professional, client, token or name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from linkpronto.errors import StoreUnavailable
from linkpronto.links.store import LinkStore

log = logging.getLogger(__name__)

FIRST_PURGE_DELAY_S = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def purge(store: LinkStore, older_than_s: float, now: datetime | None = None) -> int:
    """Delete the links that ended more than ``older_than_s`` seconds before ``now``; returns how many."""
    cutoff = (now or utcnow()) - timedelta(seconds=older_than_s)
    return store.purge(cutoff)


async def purge_periodically(
    store: LinkStore,
    *,
    retention_s: float,
    interval_s: float,
    clock: Callable[[], datetime] = utcnow,
    first_delay_s: float | None = None,
) -> None:
    """Purge shortly after start-up and then every ``interval_s``, until cancelled."""
    await asyncio.sleep(min(FIRST_PURGE_DELAY_S, interval_s) if first_delay_s is None else first_delay_s)
    while True:
        try:
            n = await store.call(purge, store, retention_s, clock())
        except StoreUnavailable:
            pass  # the store logs and reports it; the next round retries
        else:
            if n:
                log.info("retention: deleted %d ended links older than %.0f days", n, retention_s / 86400)
        await asyncio.sleep(interval_s)
