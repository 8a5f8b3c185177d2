"""Presence in the store, on SQLite and a real PostgreSQL: the transactional outbox, duplicates, and
concurrent webhooks for one link (optimistic version: no update is lost)."""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers.lp import TEST_KEY, TEST_SECRET
from linkpronto.config import defaults
from linkpronto.events import outbox
from linkpronto.events.hub import EventHub
from linkpronto.events.webhook import RoomEvent
from linkpronto.links.store import LinkRow, LinkStore, sqlite_url

_ids = itertools.count()


def _store(tmp_path: Path, database_url: str) -> LinkStore:
    return LinkStore(database_url or sqlite_url(tmp_path))


def _link(store: LinkStore, room: str = "consulta-abc") -> LinkRow:
    now = datetime.now(UTC)
    row = LinkRow(id="lk_" + room[-6:], token_hash="h" * 60 + room[-4:], token_enc=b"x", professional_id="dra",
                  client_id=None, consultation_type=None, room=room, status="ready", created_at=now,
                  expires_at=now + timedelta(hours=1), max_uses=0, uses=0)
    return store.insert(row)


def ev(kind: str, psid: str, role: str = "patient", at: int = 1000, eid: str | None = None) -> RoomEvent:
    return RoomEvent(id=eid or f"EV_{next(_ids)}", kind=kind, room="consulta-abc", room_sid="RM_1", created_at=at,
                     participant_sid=psid, identity=("p-" if role == "patient" else "h-") + psid, name="Maria",
                     role=role)


def test_presence_change_and_its_callback_are_stored_together(tmp_path: Path, database_url: str) -> None:
    store = _store(tmp_path, database_url)
    try:
        link = _link(store)
        now = datetime.now(UTC)
        joined = ev("participant_joined", "PA_1")
        change = outbox.apply_event(store, joined, now, outbox=True)
        assert change is not None and change.doc["presence"] == "waiting"
        assert outbox.apply_event(store, joined, now, outbox=True) is None  # a retried delivery
        row = store.get(link.id)
        assert row is not None and row.presence == "waiting" and row.waiting_name == "Maria"
        assert row.presence_since == datetime.fromtimestamp(1000, UTC)
        items = outbox.pending(store)
        assert [i.id for i in items] == [change.doc["id"]]
        assert outbox.claim(store, items[0], now)
        assert not outbox.claim(store, items[0], now)  # leased: a second instance does not send it
        outbox.delivered(store, items[0].id, now)
        assert outbox.pending(store) == []
        assert outbox.purge(store, now + timedelta(seconds=1)) == 1
        # an unknown room changes nothing and queues nothing
        stray = RoomEvent(id="EV_x", kind="participant_joined", room="nope", room_sid="RM_9", created_at=1,
                          participant_sid="PA_9", identity="p-9", name="X", role="patient")
        assert outbox.apply_event(store, stray, now, outbox=True) is None
        assert outbox.counts(store) == {"pending": 0, "gave_up": 0}
    finally:
        store.close()


def test_concurrent_webhooks_for_one_link_lose_nothing(tmp_path: Path, database_url: str) -> None:
    store = _store(tmp_path, database_url)
    try:
        link = _link(store)
        now = datetime.now(UTC)
        n = 12
        events = [ev("participant_joined", f"PA_{i}", at=1000 + i) for i in range(n)]
        events += [ev("participant_left", f"PA_{i}", at=2000 + i) for i in range(n - 1)]  # PA_{n-1} stays
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda e: outbox.apply_event(store, e, now, outbox=False), events))
        row = store.get(link.id)
        assert row is not None and row.presence == "waiting"
        assert row.presence_version == len(events)  # every event applied exactly once
    finally:
        store.close()


@pytest.mark.slow
async def test_instances_sharing_postgresql_all_show_the_change(tmp_path: Path, pg_url: str) -> None:
    """A webhook reaches one instance; the dashboard stream of the other shows the same event."""
    stores = [LinkStore(pg_url), LinkStore(pg_url)]
    hubs = [EventHub(defaults(tmp_path / f"i{i}"), s, lambda: (TEST_KEY, TEST_SECRET), b"d" * 32)
            for i, s in enumerate(stores)]
    try:
        _link(stores[0])
        for hub in hubs:
            await hub.start()
        other = hubs[1].subscribe()
        here = hubs[0].subscribe()
        doc = await hubs[0].handle(ev("participant_joined", "PA_1", at=int(time.time())))
        assert doc is not None and doc["presence"] == "waiting"
        assert (await asyncio.wait_for(here.get(), 1))["id"] == doc["id"]
        seen = await asyncio.wait_for(other.get(), 5)
        assert seen == doc  # the same event, same id: a dashboard never sees it twice
        await asyncio.sleep(1)
        assert other.empty() and here.empty()
    finally:
        for hub in hubs:
            await hub.aclose()
        for s in stores:
            s.close()
