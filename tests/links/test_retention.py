"""Retention (LGPD): links that ended are purged after ``links.retention``, exactly those.

Runs on SQLite and on a real PostgreSQL. Time is injected: links are made "in the past" with the
service's clock, then purged with a cut-off of 30 days.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers.inproc import InProcessDouble
from linkpronto import keys
from linkpronto.links.retention import purge, purge_periodically
from linkpronto.links.service import LinkService, Proof
from linkpronto.links.store import LinkRow, LinkStore, sqlite_url
from links.test_migrations import service_for

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RETENTION_S = 30 * 86400.0


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _make(svc: LinkService, clock: Clock, at: datetime, *, ttl_days: float, **kw: object) -> tuple[str, str]:
    clock.at = at
    proof = Proof(at, "https://consultas.example", "[]")
    row, token = svc.create(professional_id="dra-ana", client_id="Maria-Silva-123", expires_in_s=ttl_days * 86400,
                            proven=proof, **kw)  # type: ignore[arg-type]
    return row.id, token


def populate(store: LinkStore, secrets_: keys.InstanceSecrets) -> tuple[set[str], set[str]]:
    """Links in every state, each on one side of the 30-day line; returns (should go, should stay)."""
    clock = Clock(NOW)
    svc = service_for(store, secrets_)
    svc.clock = clock
    go: set[str] = set()
    stay: set[str] = set()
    stay.add(_make(svc, clock, NOW - 40 * DAY, ttl_days=90)[0])  # still usable, though old
    go.add(_make(svc, clock, NOW - 40 * DAY, ttl_days=9)[0])  # expired 31 days ago
    stay.add(_make(svc, clock, NOW - 40 * DAY, ttl_days=11)[0])  # expired 29 days ago
    rid, _ = _make(svc, clock, NOW - 40 * DAY, ttl_days=90)  # revoked 31 days ago, expiry in the future
    store.revoke(rid, NOW - 31 * DAY)
    go.add(rid)
    rid, _ = _make(svc, clock, NOW - 40 * DAY, ttl_days=90)  # revoked yesterday
    store.revoke(rid, NOW - DAY)
    stay.add(rid)
    uid, utok = _make(svc, clock, NOW - 40 * DAY, ttl_days=90, max_uses=1)  # used up 31 days ago
    clock.at = NOW - 31 * DAY
    svc.join(utok, "Maria Silva")
    assert svc.record_device_check(utok, {"ok": True, "camera": "ok"})
    go.add(uid)
    uid, utok = _make(svc, clock, NOW - 40 * DAY, ttl_days=90, max_uses=1)  # used up yesterday
    clock.at = NOW - DAY
    svc.join(utok, None)
    stay.add(uid)
    uid, utok = _make(svc, clock, NOW - 40 * DAY, ttl_days=90, max_uses=2)  # one use left
    clock.at = NOW - 31 * DAY
    svc.join(utok, None)
    stay.add(uid)
    return go, stay


def _ids(store: LinkStore) -> set[str]:
    return {r.id for r in store.list_links()}


def test_purge_removes_exactly_the_links_past_retention(tmp_path: Path, database_url: str) -> None:
    secrets_ = keys.load_or_create(tmp_path / "keys")
    store = LinkStore(database_url or sqlite_url(tmp_path))
    try:
        go, stay = populate(store, secrets_)
        assert _ids(store) == go | stay
        assert purge(store, RETENTION_S, NOW) == len(go)
        assert _ids(store) == stay
        assert purge(store, RETENTION_S, NOW) == 0
        # With a shorter retention, the links that ended yesterday and 29 days ago go too.
        assert purge(store, 0.5 * 86400, NOW) == 3
    finally:
        store.close()


async def test_running_linkpronto_purges_periodically_and_logs_no_patient_data(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_ = keys.load_or_create(tmp_path / "keys")
    store = LinkStore(database_url or sqlite_url(tmp_path))
    try:
        _go, stay = populate(store, secrets_)
        task = asyncio.create_task(
            purge_periodically(store, retention_s=RETENTION_S, interval_s=0.05, clock=lambda: NOW, first_delay_s=0)
        )
        try:
            for _ in range(400):  # a deadline, not a timing claim: it stops as soon as the purge ran
                if _ids(store) == stay:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
        assert _ids(store) == stay
        assert "deleted 3 ended links" in caplog.text
        for identifier in ("Maria", "Silva", "dra-ana", "123"):
            assert identifier not in caplog.text
    finally:
        store.close()


def test_link_purge_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from linkpronto.cli import app

    data_dir = tmp_path / "data"
    secrets_ = keys.load_or_create(data_dir)
    store = LinkStore(sqlite_url(data_dir))
    try:
        clock = Clock(datetime.now(UTC) - 40 * DAY)
        svc = service_for(store, secrets_)
        svc.clock = clock
        old = _make(svc, clock, clock.at, ttl_days=1)[0]  # ended 39 days ago
        recent = _make(svc, clock, datetime.now(UTC) - 2 * DAY, ttl_days=1)[0]  # ended yesterday
    finally:
        store.close()
    for name in list(__import__("os").environ):
        if name.startswith("LINKPRONTO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LINKPRONTO_SERVER_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["link", "purge", "--older-than", "30d", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"deleted": 1, "older_than_s": 30 * 86400.0}
    res = runner.invoke(app, ["link", "purge", "--older-than", "nonsense"])
    assert res.exit_code == 2
    store = LinkStore(sqlite_url(data_dir))
    try:
        assert _ids(store) == {recent} and old not in _ids(store)
    finally:
        store.close()


async def test_the_running_orchestrator_purges_used_up_links(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    from helpers.lp import run_lp, settings_for
    from linkpronto import paths

    settings = settings_for(
        tmp_path / "d", livekit_url=livekit_inproc.url, links={"retention": "0.1s", "purge_interval": "0.05s"}
    )
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        kept = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).json()
        once = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "max_uses": 1})).json()
        res = await lp.public.post(paths.JOIN, json={"token": str(once["url"]).rsplit("/", 1)[1]})
        assert res.status_code == 200
        for _ in range(100):
            if (await lp.admin.get(f"/api/consultation-links/{once['id']}")).status_code == 404:
                break
            await asyncio.sleep(0.05)
        assert (await lp.admin.get(f"/api/consultation-links/{once['id']}")).status_code == 404
        assert (await lp.admin.get(f"/api/consultation-links/{kept['id']}")).json()["status"] == "ready"


def _event(kind: str, room: str, n: int, name: str = "Maria Silva") -> object:
    from linkpronto.events.webhook import RoomEvent

    return RoomEvent(id=f"EV_{kind}_{n}", kind=kind, room=room, room_sid="RM_1", created_at=int(NOW.timestamp()) + n,
                     participant_sid=f"PA_{n // 10}", identity="p-0001", name=name, role="patient")


LINKS_TABLE = LinkRow.__tablename__


def _names_left(store: LinkStore) -> list[str]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        rows = [*conn.execute(text(f"SELECT waiting_name, presence_json FROM {LINKS_TABLE}")).all(),
                *conn.execute(text("SELECT payload, '' FROM event_outbox")).all()]
    return [repr(r) for r in rows if "Maria" in repr(r)]


def test_the_patients_name_is_kept_only_while_it_is_shown(tmp_path: Path) -> None:
    """Issue 19 finding 14: waiting_name, the presence state and delivered callback events lose the
    display name once it is no longer shown; a purge clears it from every ended link."""
    from linkpronto.events import outbox

    secrets_ = keys.load_or_create(tmp_path / "keys")
    store = LinkStore(sqlite_url(tmp_path))
    try:
        clock = Clock(NOW)
        svc = service_for(store, secrets_)
        svc.clock = clock
        first, _ = _make(svc, clock, NOW, ttl_days=1)
        second, _ = _make(svc, clock, NOW, ttl_days=1)
        rooms = {r.id: r.room for r in store.list_links()}
        change = outbox.apply_event(store, _event("participant_joined", rooms[first], 1), NOW, outbox=True)  # type: ignore[arg-type]
        assert change is not None and change.doc["waiting_name"] == "Maria Silva"
        assert _names_left(store)  # shown now: "Maria está esperando"
        # Delivered to the app: the event keeps its id, not the name.
        outbox.delivered(store, change.doc["id"], NOW)
        outbox.apply_event(store, _event("participant_left", rooms[first], 2), NOW, outbox=True)  # type: ignore[arg-type]
        for item in outbox.pending(store):
            outbox.delivered(store, item.id, NOW)
        assert _names_left(store) == []  # the patient left: nothing of the name remains
        # A patient still "waiting" on a link that then ends (LiveKit never said room_finished):
        outbox.apply_event(store, _event("participant_joined", rooms[second], 11), NOW, outbox=False)  # type: ignore[arg-type]
        assert _names_left(store)
        store.revoke(second, NOW)
        purge(store, RETENTION_S, NOW)
        assert _names_left(store) == []
        assert {first, second} <= _ids(store)  # the links themselves stay until retention
    finally:
        store.close()
