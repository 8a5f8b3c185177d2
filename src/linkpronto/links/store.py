"""The link store: SQLAlchemy 2 over SQLite (WAL, ``synchronous=FULL``) or PostgreSQL (psycopg 3).

A link's token is never stored: only its SHA-256 (for lookup) and the token encrypted with a key
(``keys.InstanceSecrets.link_key``). Uses are counted with one conditional ``UPDATE ... RETURNING``
and revocation is one ``UPDATE ... RETURNING`` too, so concurrent joins can never exceed
``max_uses`` — on SQLite, and on PostgreSQL across any number of instances (READ COMMITTED
re-checks the ``WHERE`` of a row another transaction just updated).

The schema is versioned with Alembic (:mod:`linkpronto.links.migrations`): opening a store brings
the database up to the newest revision, a 0.1.0 file included. A lost database connection never
escapes as a driver error: :meth:`LinkStore.call` turns it into :class:`StoreUnavailable`
(``STORE_UNAVAILABLE``, HTTP 503 with a fix), :attr:`LinkStore.failure` says so in the status, and
the next successful call (``pool_pre_ping`` replaces dead pooled connections) clears it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import json
import logging
import threading
import time
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
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from linkpronto.components import PartState, PartStatus
from linkpronto.errors import ConfigInvalid, DbDriverMissing, StoreUnavailable
from linkpronto.i18n import Text as T

log = logging.getLogger(__name__)

R = TypeVar("R")
SQLITE_BUSY_TIMEOUT_MS = 5000
PG_CONNECT_TIMEOUT_S = 5
PG_STATEMENT_TIMEOUT_MS = 15000
PG_POOL_SIZE = 8
#: Marked down after one failed operation; up again after this many successes spanning RECOVERY_S.
RECOVERY_SUCCESSES = 2
RECOVERY_S = 1.0


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
    # 0002_v020: when the last use was counted (a used-up link's retention starts there).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, default=None)
    # 0003_presence: who is in the room (linkpronto.events.presence).
    presence: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)
    presence_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, default=None)
    waiting_name: Mapped[str | None] = mapped_column(String(80), nullable=True, default=None)
    presence_json: Mapped[str | None] = mapped_column(Text, nullable=True, default=None)
    presence_version: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)  # optimistic lock

    __table_args__ = (
        Index("ix_links_professional", "professional_id"),
        Index("ix_links_status", "status"),
        Index("ix_links_expires", "expires_at"),
        Index("ix_links_room", "room"),
        Index("ix_links_presence_since", "presence_since"),
    )


class SecretRow(Base):
    """0002_v020: the deployment's shared secrets (see :mod:`linkpronto.deployment`)."""

    __tablename__ = "linkpronto_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RevocationRow(Base):
    """0004_revocations: a revoked link's room, refused by every instance's LiveKit gateway ``until``
    LiveKit itself stops accepting the join tokens issued before the revocation."""

    __tablename__ = "link_revocations"
    link_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    room: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_revocations_room", "room"),
        Index("ix_revocations_until", "until"),
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
    .values(uses=_T.c.uses + 1, last_used_at=bindparam("now"))
    .returning(*_T.c)
)
# Revocation: one statement, so a join racing it either counted before or is refused after.
_REVOKE = (
    update(_T)
    .where(_T.c.id == bindparam("link_id"))
    .values(
        status=StoredStatus.REVOKED.value,
        revoked_at=func.coalesce(_T.c.revoked_at, bindparam("at")),
    )
    .returning(*_T.c)
)


_RV = cast(Table, RevocationRow.__table__)
# The gateway's question, per WebSocket or /validate (indexed; the table holds minutes of rows).
_REVOKED_UNTIL = select(func.max(_RV.c.until)).where(_RV.c.room == bindparam("room"), _RV.c.until > bindparam("now"))


def _row(mapping: Any) -> LinkRow:
    return LinkRow(**dict(mapping))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'links.db').as_posix()}"


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (what hosting providers hand out) mean psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redacted_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa_exc.ArgumentError, ValueError):
        return "<invalid database URL>"




def _unavailable(url: str, exc: BaseException) -> StoreUnavailable:
    where = redacted_url(url)
    # The driver's first line says why (refused, timeout, auth) and carries no password.
    why = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300] if str(exc) else type(exc).__name__
    return StoreUnavailable(
        T(
            f"O banco de dados dos links ({where}) não está acessível: {why}",
            f"The links database ({where}) is not reachable: {why}",
        ),
        fix=T(
            "Confira se o PostgreSQL está no ar e aceita conexões neste endereço; o linkpronto "
            "reconecta sozinho assim que ele voltar. Nada já gravado se perde.",
            "Check that PostgreSQL is up and accepts connections at this address; linkpronto "
            "reconnects by itself as soon as it is back. Nothing already stored is lost.",
        ),
        detail=type(exc).__name__,
    )


def _is_connection_error(exc: BaseException, *, sqlite: bool = False) -> bool:
    """A lost or refused connection to a database server (never a SQLite file's own errors, such
    as a full disk: those are the ``storage`` part's)."""
    if sqlite:
        return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    return isinstance(exc, sa_exc.TimeoutError | ConnectionError)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class LinkStore:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
        url = normalise_url(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            # A connection that died with its server (restart, failover) is replaced before use.
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = PG_POOL_SIZE
            kwargs["max_overflow"] = 4
            kwargs["pool_timeout"] = PG_CONNECT_TIMEOUT_S
        if self.is_postgres:
            kwargs["connect_args"] = {
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
                "application_name": "linkpronto",
                "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}",
            }
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (ModuleNotFoundError, sa_exc.NoSuchModuleError) as exc:
            raise DbDriverMissing.for_url(url, exc) from exc
        except sa_exc.ArgumentError as exc:
            raise ConfigInvalid(
                T(
                    "server.database_url não é uma URL de banco válida.",
                    "server.database_url is not a valid database URL.",
                ),
                fix=T(
                    "Use por exemplo postgresql://usuario:senha@host:5432/linkpronto, ou deixe vazio (SQLite).",
                    "Use for example postgresql://user:password@host:5432/linkpronto, or leave it empty (SQLite).",
                ),
                keys=["server.database_url"],
            ) from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Database calls leave the event loop for these threads. SQLite gets one: a single writer
        # never waits on SQLite's busy handler (which sleeps in steps of milliseconds).
        self._executor = ThreadPoolExecutor(
            max_workers=1 if self.is_sqlite else PG_POOL_SIZE, thread_name_prefix="linkpronto-db"
        )
        #: The last connection failure while it lasts (None: the database answers).
        self.failure: StoreUnavailable | None = None
        self.failure_since: float | None = None
        self._since = datetime.now(UTC)
        # Health hysteresis (see _succeeded): failures counted, successes in a row since the last.
        self._health_lock = threading.Lock()
        self._failures = 0
        self._ok_since: float | None = None
        self._ok_streak = 0
        #: Called (from a database thread) when the store goes down or comes back.
        self.on_change: Callable[[], None] | None = None
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self.close()
                raise

    def migrate(self) -> str:
        """Bring the schema to the newest revision (a 0.1.0 database included); returns it."""
        from linkpronto.links import migrations

        try:
            return migrations.upgrade(self.engine)
        except sa_exc.SQLAlchemyError as exc:
            if _is_connection_error(exc, sqlite=self.is_sqlite):
                raise _unavailable(self.url, exc) from exc
            raise

    def _succeeded(self) -> None:
        """A call succeeded while the store is marked down: up again only after
        :data:`RECOVERY_SUCCESSES` successes in a row spanning :data:`RECOVERY_S` (hysteresis, as a
        load balancer's ``rise`` count: one lucky round trip during a flapping outage is not a recovery)."""
        with self._health_lock:
            now = time.monotonic()
            if self._ok_since is None:
                self._ok_since, self._ok_streak = now, 1
                return
            self._ok_streak += 1
            if self._ok_streak < RECOVERY_SUCCESSES or now - self._ok_since < RECOVERY_S:
                return
        self._record(None)

    def _record(self, failure: StoreUnavailable | None) -> None:
        with self._health_lock:
            self._ok_since, self._ok_streak = None, 0
            if failure is not None:
                self._failures += 1
        changed = (failure is None) != (self.failure is None)
        if failure is None:
            if self.failure is not None:
                log.warning("links database reachable again")
            self.failure = self.failure_since = None
        else:
            if self.failure is None:
                log.warning("links database unreachable: %s", failure.detail)
                self.failure_since = time.monotonic()
            self.failure = failure
        if changed:
            self._since = datetime.now(UTC)
            if self.on_change is not None:
                self.on_change()

    @property
    def backend(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql" if self.is_postgres else self.engine.dialect.name

    def status(self) -> PartStatus:
        """The store as a component of the status: ``ready``, or ``unhealthy`` with the error."""
        where = redacted_url(self.url) if not self.is_sqlite else "sqlite"
        if self.failure is not None:
            return PartStatus(
                state=PartState.UNHEALTHY,
                detail=T(f"{where}: inacessível", f"{where}: unreachable"),
                since=self._since,
                error=self.failure,
            )
        return PartStatus(state=PartState.READY, detail=T.same(where), since=self._since)

    def is_connection_error(self, exc: BaseException) -> bool:
        return _is_connection_error(exc, sqlite=self.is_sqlite)

    def guarded(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn`` turning a lost connection into :class:`StoreUnavailable` (and tracking health).

        Only a call during which no other call failed counts as a success (a ``ping`` wrapped in
        :meth:`call` swallows its own failure: it must not then read as the database answering)."""
        generation = self._failures
        try:
            out = fn(*args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            if not self.is_connection_error(exc):
                raise
            err = _unavailable(self.url, exc)
            self._record(err)
            raise err from exc
        if self.failure is not None and self._failures == generation:
            self._succeeded()
        return out

    def ping(self) -> bool:
        """One round trip; True when the database answers (clears :attr:`failure`)."""
        def _ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            self.guarded(_ping)
        except StoreUnavailable:
            return False
        return True

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    async def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run a blocking store operation (or one built on it) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self.guarded, fn, *args, **kwargs)
        )

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

    def revoke(self, link_id: str, now: datetime, until: datetime | None = None) -> LinkRow | None:
        """Revoke atomically (idempotent: the first revocation's time is kept). With ``until``, the
        link's room is refused by every instance's LiveKit gateway until then: the revocation row is
        written in the same transaction (a revoke either did both or neither)."""
        with self.engine.begin() as conn:
            found = conn.execute(_REVOKE, {"link_id": link_id, "at": now}).mappings().first()
            if found is not None and until is not None:
                self._insert_ignore(conn, _RV, [{"link_id": link_id, "room": found["room"],
                                                 "revoked_at": now, "until": until}], "link_id")
        return _row(found) if found is not None else None

    def revoked_until(self, room: str, now: datetime) -> datetime | None:
        """Until when ``room`` belongs to a revoked link whose join tokens LiveKit could still accept."""
        with self.engine.connect() as conn:
            until = conn.execute(_REVOKED_UNTIL, {"room": room, "now": now}).scalar()
        return UTCDateTime().process_result_value(until, self.engine.dialect)

    def active_revocations(self, now: datetime) -> dict[str, datetime]:
        """Every room still refused (room → until): what an instance loads at start-up."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_RV.c.room, _RV.c.until).where(_RV.c.until > now)).all()
        out: dict[str, datetime] = {}
        for room, until in rows:
            when = UTCDateTime().process_result_value(until, self.engine.dialect)
            if when is not None and (room not in out or out[room] < when):
                out[room] = when
        return out

    def purge_revocations(self, now: datetime) -> int:
        """Delete the revocation rows LiveKit no longer needs (their tokens expired)."""
        with self.engine.begin() as conn:
            res = conn.execute(delete(_RV).where(_RV.c.until <= now))
        return int(res.rowcount or 0)

    def _insert_ignore(self, conn: Any, table: Table, rows: list[dict[str, Any]], key: str) -> None:
        if self.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(table).on_conflict_do_nothing(index_elements=[key]), rows)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(table).on_conflict_do_nothing(index_elements=[key]), rows)

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
                .values(device_check_json=json.dumps(result))  # validated and bounded by links.inputs
            )
            return bool(getattr(res, "rowcount", 0))

    # -- retention -------------------------------------------------------------------------------
    def purge(self, cutoff: datetime) -> int:
        """Delete every link that ended (expired, revoked or used up) at or before ``cutoff``.

        A link's device check lives in its row and goes with it. Links still usable, and links that
        ended after ``cutoff``, are kept. Returns how many were deleted.
        """
        ended = or_(
            _T.c.expires_at <= cutoff,
            and_(
                _T.c.status == StoredStatus.REVOKED.value,
                func.coalesce(_T.c.revoked_at, _T.c.created_at) <= cutoff,
            ),
            and_(
                _T.c.max_uses > 0,
                _T.c.uses >= _T.c.max_uses,
                func.coalesce(_T.c.last_used_at, _T.c.created_at) <= cutoff,
            ),
        )
        with self.engine.begin() as conn:
            res = conn.execute(delete(_T).where(ended))
        return int(res.rowcount or 0)

    # -- deployment secrets ------------------------------------------------------------------------
    def secrets_get_or_create(self, proposed: dict[str, str], now: datetime) -> dict[str, str]:
        """The shared secrets: ``proposed`` is stored for each name not stored yet (the first
        instance wins a race; the others read what it wrote), then everything stored is returned."""
        secret_t = cast(Table, SecretRow.__table__)
        with self.engine.begin() as conn:
            have = {r.name for r in conn.execute(select(secret_t.c.name))}
            missing = [n for n in proposed if n not in have]
            if missing:
                self._insert_ignore(conn, secret_t, [{"name": n, "value": proposed[n], "created_at": now}
                                                     for n in missing], "name")
            rows = conn.execute(select(secret_t.c.name, secret_t.c.value)).all()
        return {r.name: r.value for r in rows}
