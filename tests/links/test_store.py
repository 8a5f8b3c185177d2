"""The link store on SQLite and on a real PostgreSQL: the same semantics on both.

Two :class:`LinkStore` objects on one database stand for two instances (two connection pools):
uses are counted exactly once across them, revocation is atomic, and a lost PostgreSQL connection is
an error with a code (``STORE_UNAVAILABLE``) that clears by itself once the server is back.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fixtures.pgserver import PgServer
from linkpronto import keys
from linkpronto.errors import ConfigInvalid, LinkGone, StoreUnavailable
from linkpronto.links import store as store_mod
from linkpronto.links.service import LinkService
from linkpronto.links.store import LinkStore, normalise_url, sqlite_url
from links.test_migrations import service_for


def _url(tmp_path: Path, database_url: str) -> str:
    return database_url or sqlite_url(tmp_path)


def _ready_link(svc: LinkService, **kw: object) -> str:
    from linkpronto.links.service import Proof

    _row, token = svc.create(
        professional_id="dra-ana", proven=Proof(datetime.now(UTC), "https://consultas.example", "[]"), **kw  # type: ignore[arg-type]
    )
    return token


def test_uses_counted_exactly_once_across_two_instances(tmp_path: Path, database_url: str) -> None:
    url = _url(tmp_path, database_url)
    secrets_ = keys.load_or_create(tmp_path / "keys")
    a, b = LinkStore(url), LinkStore(url)
    try:
        svc_a, svc_b = service_for(a, secrets_), service_for(b, secrets_)
        for max_uses in (1, 3):
            token = _ready_link(svc_a, max_uses=max_uses)
            ok: list[int] = []
            gone: list[int] = []
            barrier = threading.Barrier(40)


            def join(
                svc: LinkService, tok: str = token, ok: list[int] = ok, gone: list[int] = gone,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait()
                try:
                    svc.join(tok, None)
                    ok.append(1)
                except LinkGone:
                    gone.append(1)

            threads = [threading.Thread(target=join, args=(svc_a if i % 2 else svc_b,)) for i in range(40)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert len(ok) == max_uses and len(gone) == 40 - max_uses
            row, state = svc_b.resolve(token)
            assert row is not None and row.uses == max_uses and state == "exhausted"
    finally:
        a.close()
        b.close()


def test_revoke_is_atomic_and_idempotent(tmp_path: Path, database_url: str) -> None:
    url = _url(tmp_path, database_url)
    secrets_ = keys.load_or_create(tmp_path / "keys")
    a, b = LinkStore(url), LinkStore(url)
    try:
        svc_a, svc_b = service_for(a, secrets_), service_for(b, secrets_)
        token = _ready_link(svc_a)
        row, _ = svc_a.resolve(token)
        assert row is not None
        first = a.revoke(row.id, datetime.now(UTC))
        assert first is not None and first.status == "revoked" and first.revoked_at is not None
        later = b.revoke(row.id, datetime.now(UTC) + timedelta(hours=1))
        assert later is not None and later.revoked_at == first.revoked_at
        assert a.revoke("lk_missing", datetime.now(UTC)) is None
        with pytest.raises(LinkGone) as gone:
            svc_b.join(token, None)
        assert gone.value.reason == "revoked"
        # Expiry: a link whose time is up is refused on either instance.
        short = _ready_link(svc_a, expires_in_s=0.001)
        time.sleep(0.01)
        with pytest.raises(LinkGone) as expired:
            svc_b.join(short, None)
        assert expired.value.reason == "expired"
    finally:
        a.close()
        b.close()


@pytest.mark.slow
def test_postgres_restart_fails_with_a_code_then_recovers(postgres_server: PgServer, pg_url: str, tmp_path: Path) -> None:
    secrets_ = keys.load_or_create(tmp_path / "keys")
    store = LinkStore(pg_url)
    try:
        svc = service_for(store, secrets_)
        token = _ready_link(svc, max_uses=0)
        assert store.ping() and store.status().state.value == "ready"
        postgres_server.stop()
        with pytest.raises(StoreUnavailable) as down:
            store.guarded(svc.join, token, None)
        assert down.value.code == "STORE_UNAVAILABLE" and down.value.fix()
        assert "postgres@" in down.value.message("en") and "password" not in down.value.message("en")
        assert store.failure is not None
        status = store.status()
        assert status.state.value == "unhealthy" and status.error is not None
        assert status.error.code == "STORE_UNAVAILABLE"
        postgres_server.start()
        # Pooled connections died with the server: pre-ping replaces them, nothing to do by hand.
        assert store.guarded(svc.join, token, None).room
        # Hysteresis: one success is not a recovery; successes spanning RECOVERY_S are.
        assert store.failure is not None and store.status().state.value == "unhealthy"
        time.sleep(store_mod.RECOVERY_S)
        assert store.ping()
        assert store.failure is None and store.status().state.value == "ready"
        row, state = svc.resolve(token)
        assert row is not None and state == "ready" and row.uses == 1
        # A ping that fails inside store.call (it swallows its own failure) never reads as recovered.
        postgres_server.stop()
        for _ in range(3):
            assert store.guarded(store.ping) is False
            time.sleep(store_mod.RECOVERY_S / 2)
        assert store.status().state.value == "unhealthy"
    finally:
        if not postgres_server.running:
            postgres_server.start()
        store.close()


def test_database_urls_are_normalised_and_a_missing_driver_has_its_code() -> None:
    from linkpronto.links.health import DbDriverMissing

    assert normalise_url("postgres://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalise_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(DbDriverMissing) as bad:
        LinkStore("postgresql+pg8000://u:secret@127.0.0.1:1/db")
    assert bad.value.code == "DB_DRIVER_MISSING"
    assert "linkpronto[postgres]" in (bad.value.fix("en") or "")
    assert "secret" not in bad.value.message("en")
    with pytest.raises(ConfigInvalid):
        LinkStore("not a url")


@pytest.mark.slow
def test_postgres_down_at_start_is_store_unavailable(tmp_path: Path) -> None:
    from helpers.net import free_port

    with pytest.raises(StoreUnavailable) as down:
        LinkStore(f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/none")
    assert "hunter2" not in str(down.value.to_problem("en"))


def test_only_the_database_driver_is_a_missing_driver() -> None:
    """A module linkpronto itself needs (alembic) missing is a broken install, never DB_DRIVER_MISSING."""
    from linkpronto.links.health import _is_driver

    assert _is_driver("postgresql+psycopg://u@h/db", ModuleNotFoundError(name="psycopg"))
    assert _is_driver("postgresql+pg8000://u@h/db", ModuleNotFoundError(name="pg8000"))
    assert not _is_driver("sqlite:////tmp/x.db", ModuleNotFoundError(name="alembic"))
    assert not _is_driver("postgresql+psycopg://u@h/db", ModuleNotFoundError(name="alembic"))
