"""Versioned schema migrations of the link store (Alembic), run by the store itself at start-up.

No ``alembic.ini`` is needed at run time: :func:`upgrade` builds Alembic's configuration in code and
hands it the store's own connection. Revision ids are fixed names, one per release step::

    0001_baseline   the 0.1.0 schema, exactly (``consultation_links`` + ``linkpronto_meta``)
    0002_v020       0.2.0: retention columns, the shared deployment secrets
    0003_presence   link presence from LiveKit webhooks, the app callbacks' outbox (linkpronto.events)
    0004_revocations  revoked links' rooms, read by every instance's LiveKit gateway (0.3.1)

A 0.1.0 database has the tables but no ``alembic_version``: it is stamped ``0001_baseline`` first,
then upgraded like any other. On PostgreSQL the whole upgrade runs under a transaction-scoped
advisory lock, so several instances starting at once migrate exactly once.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

HERE = Path(__file__).resolve().parent
BASELINE = "0001_baseline"
VERSION_TABLE = "alembic_version"
# Any constant 64-bit number: the key of the advisory lock that serialises migrations.
PG_LOCK_KEY = 0x6C696E6B70726F


def _config(connection: Connection) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision the installed package knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(HERE))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    if VERSION_TABLE not in inspect(connection).get_table_names():
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()  # noqa: S608


def upgrade(engine: Engine, target: str = "head") -> str:
    """Bring the database to ``target`` (default: the newest revision); returns the revision reached."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        current = current_revision(conn)
        wanted = head_revision() if target == "head" else target
        if current == wanted:
            return current
        cfg = _config(conn)
        if current is None and "consultation_links" in inspect(conn).get_table_names():
            # linkpronto 0.1.0 created its tables without Alembic: they are exactly the baseline.
            command.stamp(cfg, BASELINE)  # type: ignore[arg-type]
        command.upgrade(cfg, target)  # type: ignore[arg-type]
        reached = current_revision(conn)
    return reached or ""


def downgrade(engine: Engine, target: str) -> None:
    """Step the schema back to ``target`` (for tests and emergency roll-backs)."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(_config(conn), target)  # type: ignore[arg-type]
