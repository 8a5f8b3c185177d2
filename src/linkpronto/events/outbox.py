"""The store side of events: presence updates and the durable callback outbox, in one transaction.

A presence change and its callback are written together (a *transactional outbox*): if the
presence changed, the event to deliver exists; a crash or restart afterwards loses nothing, because
the deliverer reads ``event_outbox`` again when it starts. Concurrent webhooks for the same link (two
instances, or LiveKit's retries) are serialised with an optimistic version (``presence_version``):
the update only lands if nobody changed the row since it was read; otherwise it is read and applied
again.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import DateTime, Index, Integer, String, Table, Text, delete, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from linkpronto import schema
from linkpronto.events import presence as pres
from linkpronto.events.webhook import RoomEvent
from linkpronto.links.store import Base, LinkRow, LinkStore, UTCDateTime

OPTIMISTIC_RETRIES = 20
LEASE = timedelta(seconds=30)


class OutboxRow(Base):
    """One event to POST to ``app.events_url``; ``id`` is its idempotency key."""

    __tablename__ = "event_outbox"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    link_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)

    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "created_at"),)


_L = cast(Table, LinkRow.__table__)
_O = cast(Table, OutboxRow.__table__)
_ = DateTime  # (UTCDateTime wraps it)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Change:
    """A presence transition of one link: the document for the SSE stream and the app callback."""

    doc: dict[str, Any]


def apply_event(store: LinkStore, ev: RoomEvent, now: datetime, *, outbox: bool) -> Change | None:
    """Apply a verified webhook event to the link whose room it names (blocking; run via store.call).

    Returns the transition when the link's presence value changed, else None (unknown room,
    duplicate, late or no change). With ``outbox``, the transition is queued for the app in the same
    transaction.
    """
    cols = (_L.c.id, _L.c.room, _L.c.professional_id, _L.c.client_id, _L.c.consultation_type,
            _L.c.presence, _L.c.presence_since, _L.c.waiting_name, _L.c.presence_json, _L.c.presence_version)
    for _attempt in range(OPTIMISTIC_RETRIES):
        with store.engine.begin() as conn:
            row = conn.execute(select(*cols).where(_L.c.room == ev.room).limit(1)).mappings().first()
            if row is None:
                return None
            state = pres.load_state(row["presence_json"])
            if not pres.apply(state, ev):
                return None
            value, name = pres.derive(state)
            changed = (value, name) != (row["presence"], row["waiting_name"])
            since = pres.event_time(ev) if value != row["presence"] else row["presence_since"]
            version = row["presence_version"] or 0
            doc: dict[str, Any] | None = None
            if changed:
                doc = schema.dump(schema.PresenceEvent.model_validate({
                    "id": new_event_id(), "link_id": row["id"], "room": row["room"],
                    "professional_id": row["professional_id"], "client_id": row["client_id"],
                    "consultation_type": row["consultation_type"], "presence": value, "previous": row["presence"],
                    "presence_since": since, "waiting_name": name, "occurred_at": pres.event_time(ev),
                    "livekit_event": {"id": ev.id, "event": ev.kind},
                }))
                # The last change travels with the row: other instances publish the same event (same id).
                state["last_event"] = doc
            version_match = (_L.c.presence_version == version if row["presence_version"] is not None
                             else _L.c.presence_version.is_(None))
            done = conn.execute(
                update(_L).where(_L.c.id == row["id"], version_match).values(
                    presence=value, presence_since=since, waiting_name=name,
                    presence_json=pres.dump_state(state), presence_version=version + 1,
                )
            )
            if not done.rowcount:
                continue  # someone else updated this link meanwhile: read it again
            if doc is None:
                return None
            if outbox:
                conn.execute(insert(_O).values(
                    id=doc["id"], link_id=row["id"], created_at=now, payload=json.dumps(doc, separators=(",", ":")),
                    attempts=0, next_attempt_at=now,
                ))
            return Change(doc)
    raise RuntimeError(f"presence of room {ev.room!r}: too many concurrent updates")


def recent_changes(store: LinkStore, since: datetime) -> list[tuple[str, int, dict[str, Any]]]:
    """(link id, presence version, last PresenceEvent) of links whose presence changed since ``since``.

    Used by instances that share a database: a webhook reaches one of them, the others publish the
    same event to their own dashboards from here.
    """
    q = (select(_L.c.id, _L.c.presence_version, _L.c.presence_json)
         .where(_L.c.presence_since >= since, _L.c.presence_json.is_not(None)))
    out: list[tuple[str, int, dict[str, Any]]] = []
    with store.engine.connect() as conn:
        for row in conn.execute(q).mappings():
            last = pres.load_state(row["presence_json"]).get("last_event")
            if isinstance(last, dict):
                out.append((row["id"], int(row["presence_version"] or 0), last))
    return out


# -- the deliverer's side -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pending:
    id: str
    link_id: str
    payload: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime


def pending(store: LinkStore, limit: int = 200) -> list[Pending]:
    """Undelivered events, oldest first."""
    q = (select(_O.c.id, _O.c.link_id, _O.c.payload, _O.c.attempts, _O.c.next_attempt_at, _O.c.created_at)
         .where(_O.c.delivered_at.is_(None), _O.c.gave_up_at.is_(None))
         .order_by(_O.c.created_at, _O.c.id).limit(limit))
    with store.engine.connect() as conn:
        return [Pending(**dict(r)) for r in conn.execute(q).mappings()]


def claim(store: LinkStore, item: Pending, now: datetime) -> bool:
    """Lease one due event (so another instance does not send it at the same time)."""
    with store.engine.begin() as conn:
        res = conn.execute(
            update(_O).where(_O.c.id == item.id, _O.c.delivered_at.is_(None),
                             _O.c.next_attempt_at == item.next_attempt_at)
            .values(next_attempt_at=now + LEASE)
        )
        return bool(res.rowcount)


def _without_name(payload: str) -> str:
    try:
        doc = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(doc, dict) and doc.get("waiting_name"):
        doc["waiting_name"] = None
        return json.dumps(doc, separators=(",", ":"))
    return payload


def _forget_name(conn: Any, event_id: str) -> None:
    """A delivered or abandoned event keeps its id (idempotency, the log) but not the patient's name."""
    payload = conn.execute(select(_O.c.payload).where(_O.c.id == event_id)).scalar_one_or_none()
    if payload is not None:
        clean = _without_name(payload)
        if clean != payload:
            conn.execute(update(_O).where(_O.c.id == event_id).values(payload=clean))


def forget_names(store: LinkStore) -> None:
    """No delivered or abandoned event keeps a patient's name (also those from before this rule)."""
    with store.engine.begin() as conn:
        done = conn.execute(select(_O.c.id).where(
            (_O.c.delivered_at.is_not(None)) | (_O.c.gave_up_at.is_not(None)),
            _O.c.payload.like('%"waiting_name":"%'))).scalars().all()
        for event_id in done:
            _forget_name(conn, event_id)


def delivered(store: LinkStore, event_id: str, now: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(_O).where(_O.c.id == event_id).values(delivered_at=now, last_error=None))
        _forget_name(conn, event_id)


def failed(store: LinkStore, event_id: str, *, attempts: int, retry_at: datetime | None, error: str,
           now: datetime) -> None:
    values: dict[str, Any] = {"attempts": attempts, "last_error": error[:300]}
    if retry_at is None:
        values["gave_up_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    with store.engine.begin() as conn:
        conn.execute(update(_O).where(_O.c.id == event_id).values(**values))
        if retry_at is None:
            _forget_name(conn, event_id)


def purge(store: LinkStore, before: datetime) -> int:
    """Forget delivered (or abandoned) events older than ``before`` (they carry a patient's name)."""
    with store.engine.begin() as conn:
        res = conn.execute(delete(_O).where(
            ((_O.c.delivered_at.is_not(None)) & (_O.c.delivered_at < before))
            | ((_O.c.gave_up_at.is_not(None)) & (_O.c.gave_up_at < before))
        ))
        return int(res.rowcount or 0)


def counts(store: LinkStore) -> dict[str, int]:
    from sqlalchemy import func

    with store.engine.connect() as conn:
        waiting = conn.execute(select(func.count()).select_from(_O).where(
            _O.c.delivered_at.is_(None), _O.c.gave_up_at.is_(None))).scalar_one()
        dead = conn.execute(select(func.count()).select_from(_O).where(_O.c.gave_up_at.is_not(None))).scalar_one()
    return {"pending": int(waiting), "gave_up": int(dead)}
