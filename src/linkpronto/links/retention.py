"""Retention of health-related data: links that ended are deleted after ``links.retention``.

A link has *ended* when it expired, was revoked or was used up; it is deleted — with its device
check, which lives in the same row — once it ended more than ``links.retention`` ago (default 30
days). Links that can still be used are never touched. A running linkpronto purges every
``links.purge_interval``; ``linkpronto link purge --older-than 30d`` does it on demand. Logs carry
counts only: never a professional, client, token or name.

The patient's display name is kept only while it is shown ("Maria está esperando"): it leaves the
link's presence when the patient leaves the room, the app's callback events once delivered (or
abandoned), and — by every purge — any link that has ended, whatever its age (:func:`forget_names`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from linkpronto.errors import StoreUnavailable
from linkpronto.links.store import LinkStore

log = logging.getLogger(__name__)

FIRST_PURGE_DELAY_S = 5.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def purge(store: LinkStore, older_than_s: float, now: datetime | None = None) -> int:
    """Delete the links that ended more than ``older_than_s`` seconds before ``now``; returns how many.
    Every ended link also loses the patient's name at once (:func:`forget_names`)."""
    now = now or utcnow()
    deleted = store.purge(now - timedelta(seconds=older_than_s))
    # Revocations go when the tokens they refuse have expired, whatever the retention: a link purged
    # sooner keeps its revocation until then (``link purge --older-than 0`` cannot reopen a room).
    store.purge_revocations(now)
    forget_names(store, now)
    return deleted


def forget_names(store: LinkStore, now: datetime) -> int:
    """Clear the patient's display name from every link that has ended (expired, revoked, used up)
    and from every callback event that is no longer waiting to be delivered; returns links changed."""
    from sqlalchemy import Table, and_, or_, select, update

    from linkpronto.events import outbox
    from linkpronto.events import presence as pres
    from linkpronto.links.store import LinkRow, StoredStatus

    t = cast(Table, LinkRow.__table__)
    ended = or_(t.c.expires_at <= now, t.c.status == StoredStatus.REVOKED.value,
                and_(t.c.max_uses > 0, t.c.uses >= t.c.max_uses))
    has_name = or_(t.c.waiting_name.is_not(None), t.c.presence_json.like('%"name":"_%'),
                   t.c.presence_json.like('%"waiting_name":"%'))
    changed = 0
    with store.engine.begin() as conn:
        rows = conn.execute(select(t.c.id, t.c.presence_json).where(ended, has_name)).all()
        for link_id, state_json in rows:
            state = pres.forget_names(pres.load_state(state_json)) if state_json else None
            conn.execute(update(t).where(t.c.id == link_id).values(
                waiting_name=None, presence_json=pres.dump_state(state) if state is not None else None))
            changed += 1
    outbox.forget_names(store)
    return changed


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
