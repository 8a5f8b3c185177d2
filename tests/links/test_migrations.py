"""Schema migrations: a 0.1.0 database opens, upgraded in place, with every link still joinable.

The 0.1.0 database is made here from the 0.1.0 schema's DDL, byte for byte what linkpronto 0.1.0's
``create_all`` wrote to SQLite (no ``alembic_version`` table), and filled with links the way 0.1.0
stored them (token hashed, token encrypted with the instance's link key).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from helpers.inproc import InProcessDouble
from helpers.lp import TEST_KEY, TEST_SECRET
from linkpronto import keys
from linkpronto.errors import LinkGone
from linkpronto.links import migrations
from linkpronto.links.service import Credentials, LinkService
from linkpronto.links.store import LinkStore, sqlite_url

SCHEMA_010_SQLITE = [
    'CREATE TABLE linkpronto_meta (\n\t"key" VARCHAR(64) NOT NULL, \n\tvalue VARCHAR(256) NOT NULL, \n\t'
    'PRIMARY KEY ("key")\n)',
    "CREATE TABLE consultation_links (\n\tid VARCHAR(32) NOT NULL, \n\ttoken_hash VARCHAR(64) NOT NULL, \n\t"
    "token_enc BLOB NOT NULL, \n\tprofessional_id VARCHAR(200) NOT NULL, \n\tclient_id VARCHAR(200), \n\t"
    "consultation_type VARCHAR(100), \n\troom VARCHAR(64) NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\t"
    "created_at DATETIME NOT NULL, \n\texpires_at DATETIME NOT NULL, \n\tmax_uses INTEGER NOT NULL, \n\t"
    "uses INTEGER NOT NULL, \n\tverified_at DATETIME, \n\trevoked_at DATETIME, \n\t"
    "sent_base_url VARCHAR(300), \n\tchecks_json TEXT, \n\tdevice_check_json TEXT, \n\t"
    "failure_json TEXT, \n\tPRIMARY KEY (id), \n\tUNIQUE (token_hash)\n)",
    "CREATE INDEX ix_links_status ON consultation_links (status)",
    "CREATE INDEX ix_links_professional ON consultation_links (professional_id)",
    "INSERT INTO linkpronto_meta (key, value) VALUES ('schema_version', '1')",
]


def _sqlite_time(t: datetime) -> str:
    """How SQLAlchemy 0.1.0 stored a UTC datetime in SQLite (naive ISO text)."""
    return t.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def make_010_sqlite(data_dir: Path, secrets_: keys.InstanceSecrets, n: int = 5) -> list[tuple[str, str]]:
    """A 0.1.0 ``links.db`` with ``n`` ready links (one with max_uses=2, used once); returns (id, token)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    db = sqlite3.connect(data_dir / "links.db")
    for stmt in SCHEMA_010_SQLITE:
        db.execute(stmt)
    out = []
    for i in range(n):
        token = keys.new_token()
        link_id = f"lk_010{i:011d}"
        db.execute(
            "INSERT INTO consultation_links (id, token_hash, token_enc, professional_id, client_id, "
            "consultation_type, room, status, created_at, expires_at, max_uses, uses, verified_at, "
            "sent_base_url, checks_json) VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?, ?, ?, ?, '[]')",
            (
                link_id, keys.token_hash(token), secrets_.encrypt_token(token), "dra-ana", f"c-{i}",
                "psicologia", f"consulta-010{i}", _sqlite_time(now - timedelta(hours=1)),
                _sqlite_time(now + timedelta(hours=23)), 2 if i == 0 else 0, 1 if i == 0 else 0,
                _sqlite_time(now - timedelta(hours=1)), "https://old.example",
            ),
        )
        out.append((link_id, token))
    db.commit()
    db.close()
    return out


def service_for(store: LinkStore, secrets_: keys.InstanceSecrets) -> LinkService:
    return LinkService(
        store,
        secrets_,
        link_path="/c/{token}",
        default_ttl_s=3600,
        default_max_uses=0,
        join_token_ttl_s=900,
        public_base=lambda: "https://consultas.example",
        credentials=lambda: Credentials(TEST_KEY, TEST_SECRET, "wss://consultas.example/_linkpronto/livekit"),
    )


def test_010_sqlite_file_upgrades_in_place_and_every_link_joins(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    secrets_ = keys.load_or_create(data_dir)
    issued = make_010_sqlite(data_dir, secrets_)
    engine = create_engine(sqlite_url(data_dir))
    with engine.connect() as conn:
        assert migrations.current_revision(conn) is None
    engine.dispose()

    store = LinkStore(sqlite_url(data_dir))
    try:
        with store.engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
            cols = {c["name"] for c in inspect(conn).get_columns("consultation_links")}
            assert "last_used_at" in cols
            assert conn.execute(text("SELECT count(*) FROM consultation_links")).scalar() == len(issued)
        svc = service_for(store, secrets_)
        for link_id, token in issued:
            row, state = svc.resolve(token)
            assert row is not None and row.id == link_id and state == "ready"
            grant = svc.join(token, "Maria")
            assert grant.room == row.room
            assert svc.url_for(row) == f"https://consultas.example/c/{token}"
        # The link that had max_uses=2 and one use has now used its second: the third is refused.
        with pytest.raises(LinkGone):
            svc.join(issued[0][1], None)
        assert store.get(issued[1][0]) is not None and store.get(issued[1][0]).last_used_at is not None  # type: ignore[union-attr]
    finally:
        store.close()
    # Opening again is a no-op (already at head).
    again = LinkStore(sqlite_url(data_dir))
    again.close()


def test_fresh_database_is_created_at_head_and_downgrades_to_baseline(tmp_path: Path) -> None:
    store = LinkStore(sqlite_url(tmp_path))
    try:
        with store.engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
            assert {"consultation_links", "linkpronto_meta", "linkpronto_secrets"} <= set(inspect(conn).get_table_names())
        migrations.downgrade(store.engine, migrations.BASELINE)
        with store.engine.connect() as conn:
            assert migrations.current_revision(conn) == "0001_baseline"
            assert "linkpronto_secrets" not in inspect(conn).get_table_names()
            assert "last_used_at" not in {c["name"] for c in inspect(conn).get_columns("consultation_links")}
        assert migrations.upgrade(store.engine) == migrations.head_revision()
    finally:
        store.close()


def test_revisions_form_one_line_from_the_fixed_baseline() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations.HERE))
    chain = [r.revision for r in script.walk_revisions()]
    assert chain[-4:] == ["0004_revocations", "0003_presence", "0002_v020", "0001_baseline"]
    assert len(script.get_heads()) == 1


@pytest.mark.slow
def test_010_postgres_database_upgrades_in_place(tmp_path: Path, pg_url: str) -> None:
    """A 0.1.0 PostgreSQL database: the baseline's tables and no ``alembic_version`` (0.1.0 had none)."""
    secrets_ = keys.load_or_create(tmp_path / "keys")
    engine = create_engine(pg_url)
    migrations.upgrade(engine, migrations.BASELINE)
    token = keys.new_token()
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            text(
                "INSERT INTO consultation_links (id, token_hash, token_enc, professional_id, room, status, "
                "created_at, expires_at, max_uses, uses, verified_at) VALUES ('lk_pg010', :h, :e, 'dra-ana', "
                "'consulta-pg', 'ready', now(), now() + interval '1 day', 0, 0, now())"
            ),
            {"h": keys.token_hash(token), "e": secrets_.encrypt_token(token)},
        )
    engine.dispose()
    store = LinkStore(pg_url)
    try:
        with store.engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.head_revision()
        svc = service_for(store, secrets_)
        assert svc.join(token, None).room == "consulta-pg"
    finally:
        store.close()


async def test_010_data_dir_opens_in_linkpronto_and_every_link_joins_over_http(
    tmp_path: Path, livekit_inproc: InProcessDouble
) -> None:
    """The real program path: ``up``'s orchestrator opens a 0.1.0 data directory (secrets.json and
    links.db from 0.1.0), upgrades it, and every link joins through the public listener."""
    from helpers.lp import run_lp, settings_for
    from linkpronto import paths

    data_dir = tmp_path / "data"
    secrets_ = keys.load_or_create(data_dir)
    issued = make_010_sqlite(data_dir, secrets_)
    settings = settings_for(data_dir, livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        for link_id, token in issued:
            link = (await lp.admin.get(f"/api/consultation-links/{link_id}")).json()
            assert link["status"] == "ready" and str(link["url"]).endswith(token)
            res = await lp.public.post(paths.JOIN, json={"token": token})
            assert res.status_code == 200, res.text
