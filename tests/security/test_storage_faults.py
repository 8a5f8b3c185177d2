"""Issue 11, attack 7 (storage): a corrupt database, a missing driver and a full disk each give their
code and fix, and nothing stored is lost; a database file deleted while running is noticed."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import LP, cli_env, run_lp, settings_for
from helpers.net import free_port
from linkpronto import paths
from security.child import require

pytestmark = pytest.mark.slow


def _up(data: Path, livekit_url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(data, livekit_url, free_port(), free_port(), **extra)
    return subprocess.run([sys.executable, "-m", "linkpronto", "up"], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_corrupt_database_stops_start_up_with_code_and_fix(tmp_path: Path, livekit_double: RunningDouble) -> None:
    data = tmp_path / "data"
    data.mkdir()
    garbage = b"this is not an sqlite database" * 100
    (data / "links.db").write_bytes(garbage)
    res = _up(data, livekit_double.url)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "error[DB_CORRUPT]" in res.stderr and "fix:" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert (data / "links.db").read_bytes() == garbage  # never touched


def test_database_url_without_its_driver(tmp_path: Path, livekit_double: RunningDouble) -> None:
    # The test tools install psycopg (the PostgreSQL tests need it): hide it from the child the way a
    # plain `pip install linkpronto` leaves it — a package on the path first that cannot be imported.
    hidden = tmp_path / "no-psycopg"
    (hidden / "psycopg").mkdir(parents=True)
    (hidden / "psycopg" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'psycopg'\", name='psycopg')\n"
    )
    for url in ("postgresql://lp:pw@127.0.0.1:1/lp", "postgresql+psycopg://lp:pw@127.0.0.1:1/lp"):
        res = _up(tmp_path / "data", livekit_double.url, LINKPRONTO_SERVER_DATABASE_URL=url,
                  PYTHONPATH=str(hidden))
        assert res.returncode == 1, res.stdout + res.stderr
        assert "error[DB_DRIVER_MISSING]" in res.stderr and "psycopg" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr + res.stdout
        assert "pw@" not in res.stderr  # the password in the URL is never printed


@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "3m") -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        require(False, f"a tmpfs mount (root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


async def _status_with(lp: LP, code: str | None, timeout: float = 15, state: str = "degraded") -> dict[str, object]:
    deadline = time.monotonic() + timeout
    doc: dict[str, object] = {}
    while time.monotonic() < deadline:
        doc = (await lp.admin.get("/api/status")).json()
        codes = {p["code"] for p in doc["problems"]}  # type: ignore[union-attr]
        if (code in codes and doc["state"] == state) if code else (doc["state"] == "ready"):
            return doc
        await asyncio.sleep(0.2)
    raise AssertionError(f"status never showed {code}: {doc}")


def _fill(path: Path) -> None:
    with open(path, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()


async def test_full_disk_is_degraded_with_disk_full_and_nothing_is_lost(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    with small_filesystem(tmp_path / "small") as mnt:
        async with run_lp(settings_for(mnt / "data", livekit_url=livekit_double.url)) as lp:
            await lp.wait_state("ready")
            first = (await lp.admin.post("/api/consultation-links", json={"professional_id": "dra"})).json()
            filler = mnt / "filler"
            await asyncio.to_thread(_fill, filler)
            doc = await _status_with(lp, "DISK_FULL")
            assert doc["state"] == "degraded"
            problem = next(p for p in doc["problems"] if p["code"] == "DISK_FULL")  # type: ignore[union-attr]
            assert problem["fix"] and ("espaço" in problem["fix"] or "space" in problem["fix"])
            res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 0})
            assert res.status_code == 507, res.text
            assert res.json()["error"]["code"] == "DISK_FULL" and res.json()["error"]["fix"]
            # The patient's device check on the full disk: 507 with the code, never a 500 (issue 19, 10).
            token = first["url"].rsplit("/", 1)[1]
            dc = await lp.public.post(paths.DEVICE_CHECK, json={"token": token, "result": {"ok": True,
                                                                                           "camera": "ok"}})
            assert dc.status_code == 507, dc.text
            assert dc.json()["error"]["code"] == "DISK_FULL" and str(mnt) not in dc.text
            listed = await lp.admin.get("/api/consultation-links")
            assert listed.status_code == 200 and first["id"] in {i["id"] for i in listed.json()["items"]}
            filler.unlink()
            await _status_with(lp, None)
            res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 5})
            assert res.status_code == 201, res.text
        with sqlite3.connect(mnt / "data" / "links.db") as db:
            assert db.execute("select count(*) from consultation_links").fetchone()[0] == 2


async def test_database_deleted_while_running_is_noticed_and_saved(tmp_path: Path, livekit_double: RunningDouble) -> None:
    data = tmp_path / "data"
    async with run_lp(settings_for(data, livekit_url=livekit_double.url)) as lp:
        await lp.wait_state("ready")
        link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "dra"})).json()
        (data / "links.db").unlink()
        doc = await _status_with(lp, "DB_FILE_MISSING")
        assert doc["state"] == "degraded"
        copies = list(data.glob("links.db.recovered-*"))
        assert len(copies) == 1
        with sqlite3.connect(copies[0]) as db:
            ids = {r[0] for r in db.execute("select id from consultation_links")}
        assert link["id"] in ids
        problem = next(p for p in doc["problems"] if p["code"] == "DB_FILE_MISSING")  # type: ignore[union-attr]
        assert str(copies[0]) in problem["fix"]
