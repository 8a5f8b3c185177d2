"""The link store: SQLAlchemy 2 over SQLite (WAL, ``synchronous=FULL``) or any SQLAlchemy URL.

A link's token is never stored: only its SHA-256 (for lookup) and the token encrypted with a key
that lives outside the database (``keys.InstanceSecrets.link_key``). Uses are counted with one
conditional ``UPDATE``, so concurrent joins can never exceed ``max_uses`` on any backend.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import (
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

SCHEMA_VERSION = 1
R = TypeVar("R")
SQLITE_BUSY_TIMEOUT_MS = 5000


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StoredStatus(enum.StrEnum):
    """What is stored; ``expired`` and ``exhausted`` are derived at read time."""

    PREPARING = "preparing"
    READY = "ready"
    FAILED = "failed"
    REVOKED = "revoked"


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "linkpronto_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class LinkRow(Base):
    __tablename__ = "consultation_links"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    professional_id: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    consultation_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    room: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=StoredStatus.PREPARING.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    max_uses: Mapped[int] = mapped_column(Integer, default=0)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The public base URL the link was handed out with (set when it became ready).
    sent_base_url: Mapped[str | None] = mapped_column(String(300), nullable=True)
    checks_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    device_check_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who is in the room (linkpronto.events.presence; migration 0003_presence).
    presence: Mapped[str | None] = mapped_column(String(16), nullable=True)
    presence_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    waiting_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    presence_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    presence_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # optimistic lock

    __table_args__ = (
        Index("ix_links_professional", "professional_id"),
        Index("ix_links_status", "status"),
        Index("ix_links_room", "room"),
    )


@dataclass(frozen=True, slots=True)
class UseResult:
    ok: bool
    row: LinkRow | None


_T = cast(Table, LinkRow.__table__)
# The hot paths as Core statements built once (SQLAlchemy caches their compiled form): building an
# ORM statement per request costs more than the database work itself.
_BY_HASH = select(_T).where(_T.c.token_hash == bindparam("h"))
_BY_ID = select(_T).where(_T.c.id == bindparam("id"))
_INSERT = insert(_T)
# One statement counts a use and returns the row: atomic on SQLite and PostgreSQL alike.
_USE = (
    update(_T)
    .where(
        _T.c.token_hash == bindparam("h"),
        _T.c.status == StoredStatus.READY.value,
        _T.c.expires_at > bindparam("now"),
        or_(_T.c.max_uses == 0, _T.c.uses < _T.c.max_uses),
    )
    .values(uses=_T.c.uses + 1)
    .returning(*_T.c)
)


def _row(mapping: Any) -> LinkRow:
    return LinkRow(**dict(mapping))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'links.db').as_posix()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class LinkStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Database calls leave the event loop for these threads. SQLite gets one: a single writer
        # never waits on SQLite's busy handler (which sleeps in steps of milliseconds).
        self._executor = ThreadPoolExecutor(
            max_workers=1 if self.is_sqlite else 8, thread_name_prefix="linkpronto-db"
        )
        self.migrate()

    def migrate(self) -> None:
        """Create the schema, or bring an older one up to :data:`SCHEMA_VERSION`."""
        Base.metadata.create_all(self.engine)
        with self.session() as s:
            meta = s.get(Meta, "schema_version")
            if meta is None:
                s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(meta.value) < SCHEMA_VERSION:  # future migrations go here, one step each
                meta.value = str(SCHEMA_VERSION)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    async def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run a blocking store operation (or one built on it) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    # -- operations -------------------------------------------------------------------------
    def insert(self, row: LinkRow) -> LinkRow:
        values = {c.name: getattr(row, c.key) for c in _T.c}
        with self.engine.begin() as conn:
            conn.execute(_INSERT, values)
        return row

    def get(self, link_id: str) -> LinkRow | None:
        with self.engine.connect() as conn:
            found = conn.execute(_BY_ID, {"id": link_id}).mappings().first()
        return _row(found) if found is not None else None

    def by_token_hash(self, digest: str) -> LinkRow | None:
        with self.engine.connect() as conn:
            found = conn.execute(_BY_HASH, {"h": digest}).mappings().first()
        return _row(found) if found is not None else None

    def list_links(
        self, *, professional_id: str | None = None, statuses: list[str] | None = None, limit: int = 500
    ) -> list[LinkRow]:
        q = select(LinkRow).order_by(LinkRow.created_at.desc()).limit(limit)
        if professional_id:
            q = q.where(LinkRow.professional_id == professional_id)
        if statuses:
            q = q.where(LinkRow.status.in_(statuses))
        with self.session() as s:
            return list(s.scalars(q))

    def preparing_ids(self) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(LinkRow.id).where(LinkRow.status == StoredStatus.PREPARING.value)))

    def mark_ready(
        self, link_ids: list[str], *, verified_at: datetime, base_url: str, checks: list[dict[str, Any]]
    ) -> int:
        if not link_ids:
            return 0
        with self.session() as s:
            res = s.execute(
                update(LinkRow)
                .where(LinkRow.id.in_(link_ids), LinkRow.status == StoredStatus.PREPARING.value)
                .values(
                    status=StoredStatus.READY.value,
                    verified_at=verified_at,
                    sent_base_url=base_url,
                    checks_json=json.dumps(checks),
                )
            )
            return int(getattr(res, "rowcount", 0) or 0)

    def revoke(self, link_id: str, now: datetime) -> LinkRow | None:
        with self.session() as s:
            row = s.get(LinkRow, link_id)
            if row is None:
                return None
            if row.status != StoredStatus.REVOKED.value:
                row.status = StoredStatus.REVOKED.value
                row.revoked_at = now
            return row

    def use(self, digest: str, now: datetime) -> UseResult:
        """Count one use atomically; ``ok`` is False when the link cannot be used (row tells why)."""
        with self.engine.begin() as conn:
            used = conn.execute(_USE, {"h": digest, "now": now}).mappings().first()
            if used is not None:
                return UseResult(ok=True, row=_row(used))
            found = conn.execute(_BY_HASH, {"h": digest}).mappings().first()
        return UseResult(ok=False, row=_row(found) if found is not None else None)

    def set_device_check(self, digest: str, result: dict[str, Any]) -> bool:
        with self.session() as s:
            res = s.execute(
                update(LinkRow)
                .where(LinkRow.token_hash == digest)
                .values(device_check_json=json.dumps(result)[:20000])
            )
            return bool(getattr(res, "rowcount", 0))
