"""Storage faults as errors with codes, at start and while running.

At start (:func:`open_store`):

* ``DB_CORRUPT`` — the SQLite file is not a database (or is damaged). The file is left untouched;
  the fix says how to restore it or move it aside.
* ``DB_DRIVER_MISSING`` — a ``server.database_url`` whose driver is not installed (PostgreSQL
  without psycopg); the fix names the package.

While running (:class:`StoreHealth`, shown as the ``storage`` part of the status):

* ``DISK_FULL`` — the database's file system has (almost) no free space, or a write failed with
  "disk full": the status is ``degraded`` with this problem and its fix, and creating a link answers
  507 with the same message instead of a bare 500. Nothing stored is lost; it clears by itself when
  space is freed.
* ``DB_FILE_MISSING`` / ``DB_FILE_REPLACED`` — the SQLite file was deleted or replaced while
  running (SQLite keeps writing to the open, now unreachable, file: every link would be gone at the
  next start). The status says so, and a copy of what this process still sees is saved next to it
  (``links.db.recovered-<time>``) so nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DatabaseError, NoSuchModuleError, OperationalError

from linkpronto.components import PartStatus, utcnow
from linkpronto.errors import (  # the storage errors live in the one error tree
    DbCorrupt,
    DbDriverMissing,
    DbFileMissing,
    DbFileReplaced,
    DiskFull,
    LinkprontoError,
    StorageFault,
)
from linkpronto.i18n import Text
from linkpronto.links.store import LinkStore
from linkpronto.schema import PartState

log = logging.getLogger(__name__)

#: Below this many free bytes the database's file system counts as full.
MIN_FREE_BYTES = 256 * 1024
CHECK_EVERY_S = 1.0


def sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return None
    return Path(url[len(prefix) :])


def disk_full(where: Path, detail: str = "") -> DiskFull:
    return DiskFull.at(where, detail)


def _is_driver(url: str, exc: ImportError) -> bool:
    """True when the module that failed to import is the database driver the URL names."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        driver = make_url(url).get_driver_name()
    except ArgumentError:
        return False
    name = (exc.name or "").partition(".")[0]
    return bool(name) and (name == driver or driver.startswith(name) or name.startswith(driver))


def driver_missing(url: str, exc: BaseException) -> DbDriverMissing:
    return DbDriverMissing.for_url(url, exc)


def _corrupt(path: Path | None, exc: BaseException) -> DbCorrupt:
    return DbCorrupt.at(path, exc)


def is_disk_full(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.OperationalError | sqlite3.DatabaseError):
        return "full" in str(orig).lower()
    if isinstance(orig, OSError):
        import errno

        return orig.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    text = str(orig).lower()
    return "no space left" in text or "disk full" in text or "disk is full" in text


def open_store(url: str, data_dir: Path) -> LinkStore:
    """Open the link store, turning the ways it cannot open into errors with a code and a fix."""
    from linkpronto.platform import create_private, make_private_tree

    path = sqlite_path(url)
    if path is not None and path.parent.exists():
        create_private(path)  # 0600 from the start; SQLite gives -wal/-shm the same mode
    try:
        store = LinkStore(url)
    except NoSuchModuleError as exc:
        raise driver_missing(url, exc) from exc
    except ImportError as exc:
        if not _is_driver(url, exc):
            raise  # linkpronto's own installation is broken (e.g. alembic missing): not the database's
        raise driver_missing(url, exc) from exc
    except OperationalError as exc:
        if is_disk_full(exc):
            raise disk_full(path.parent if path else data_dir, str(exc.orig)) from exc
        raise _corrupt(path, exc.orig or exc) from exc
    except DatabaseError as exc:
        raise _corrupt(path, exc.orig or exc) from exc
    if path is not None:
        try:
            with store.engine.connect() as conn:
                row = conn.exec_driver_sql("PRAGMA quick_check").first()
        except DatabaseError as exc:
            store.close()
            raise _corrupt(path, exc.orig or exc) from exc
        if row is None or row[0] != "ok":
            store.close()
            raise _corrupt(path, RuntimeError(str(row[0]) if row else "quick_check failed"))
    if data_dir.exists():
        make_private_tree(data_dir)
    return store


@dataclass
class _Identity:
    dev: int
    ino: int


class StoreHealth:
    """The ``storage`` part: free space and the database file's identity, checked at most once a
    second; write failures reported by the link service count too."""

    name = "storage"

    def __init__(
        self,
        store: LinkStore,
        data_dir: Path,
        *,
        on_change: Callable[[], None] | None = None,
        min_free: int = MIN_FREE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        free_bytes: Callable[[Path], int] | None = None,
    ) -> None:
        self.store = store
        self.path = sqlite_path(store.url)
        self.where = self.path.parent if self.path is not None else data_dir
        self.on_change = on_change
        self.min_free = min_free
        self.clock = clock
        self.free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)
        self._identity = self._stat()
        self._write_failed_at: float | None = None
        self._checked_at = float("-inf")
        self._error: LinkprontoError | None = None
        self._since = utcnow()
        self._recovered: Path | None = None

    # -- what the link service reports -----------------------------------------------------------
    def write_failed(self, exc: BaseException) -> LinkprontoError:
        """Map a failed write to its error (and remember a full disk); returns what to raise."""
        if is_disk_full(exc):
            self._write_failed_at = self.clock()
            self._checked_at = float("-inf")
            self._changed()
            return self.error() or disk_full(self.where, str(getattr(exc, "orig", exc)))
        return StorageFault(detail=str(getattr(exc, "orig", exc)))

    def write_ok(self) -> None:
        if self._write_failed_at is not None:
            self._write_failed_at = None
            self._checked_at = float("-inf")
            self._changed()

    def refuse_writes(self) -> LinkprontoError | None:
        """The error to answer a create with, without touching the database (disk full)."""
        err = self.error()
        return err if isinstance(err, DiskFull) else None

    # -- the part ------------------------------------------------------------------------------------
    def error(self) -> LinkprontoError | None:
        now = self.clock()
        if now - self._checked_at >= CHECK_EVERY_S:
            self._checked_at = now
            err = self._check()
            if (err is None) != (self._error is None) or (err and self._error and err.code != self._error.code):
                self._since = utcnow()
                self._error = err
                self._changed()
            self._error = err
        return self._error

    def status(self) -> PartStatus:
        err = self.error()
        if err is None:
            return PartStatus(PartState.READY, Text.same(str(self.where)), since=self._since)
        return PartStatus(PartState.UNHEALTHY, err.text, since=self._since, error=err)

    async def watch(self, period_s: float = 2.0) -> None:
        """Poll, so a deleted file or a full disk shows in the status without waiting for a write."""
        import asyncio

        while True:
            self.error()
            await asyncio.sleep(period_s)

    # -- checks ----------------------------------------------------------------------------------
    def _check(self) -> LinkprontoError | None:
        if self.path is not None:
            ident = self._stat()
            if ident is None:
                return self._file_missing()
            if self._identity is not None and (ident.dev, ident.ino) != (self._identity.dev, self._identity.ino):
                return self._file_replaced()
        try:
            free = self.free_bytes(self.where)
        except OSError:
            free = None
        if (free is not None and free < self.min_free) or self._write_failed_at is not None:
            if free is not None and free >= self.min_free * 4:
                self._write_failed_at = None  # space was freed
                return None
            return disk_full(self.where, f"free={free}")
        return None

    def _stat(self) -> _Identity | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return _Identity(st.st_dev, st.st_ino)

    def _save_copy(self) -> Path | None:
        """Write what this process still sees of the database next to where it was."""
        if self._recovered is not None or self.path is None:
            return self._recovered
        target = self.path.with_name(f"{self.path.name}.recovered-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            raw = self.store.engine.raw_connection()
            try:
                dbapi = raw.driver_connection
                assert isinstance(dbapi, sqlite3.Connection)
                dest = sqlite3.connect(str(target))
                try:
                    dbapi.backup(dest)
                finally:
                    dest.close()
            finally:
                raw.close()
            with contextlib.suppress(OSError):
                os.chmod(target, 0o600)
        except (sqlite3.Error, OSError, AssertionError) as exc:
            log.warning("could not save a copy of the links database: %s", exc)
            return None
        self._recovered = target
        return target

    def _file_missing(self) -> LinkprontoError:
        copy = self._save_copy()
        saved_pt = f" Uma cópia do que ainda estava aberto foi salva em {copy}." if copy else ""
        saved_en = f" A copy of what was still open was saved to {copy}." if copy else ""
        return DbFileMissing(
            Text(
                f"O arquivo do banco de links {self.path} foi apagado com o linkpronto rodando.{saved_pt}",
                f"The links database file {self.path} was deleted while linkpronto is running.{saved_en}",
            ),
            fix=Text(
                f"Pare o linkpronto e coloque a cópia de volta: mova {copy or 'o backup'} para {self.path}; "
                "depois inicie-o de novo.",
                f"Stop linkpronto and put the copy back: move {copy or 'your backup'} to {self.path}; "
                "then start it again.",
            ),
        )

    def _file_replaced(self) -> LinkprontoError:
        copy = self._save_copy()
        saved_pt = f" Uma cópia do banco em uso foi salva em {copy}." if copy else ""
        saved_en = f" A copy of the database in use was saved to {copy}." if copy else ""
        return DbFileReplaced(
            Text(
                f"O arquivo do banco de links {self.path} foi substituído com o linkpronto rodando.{saved_pt}",
                f"The links database file {self.path} was replaced while linkpronto is running.{saved_en}",
            ),
            fix=Text(
                "Pare o linkpronto, decida qual arquivo manter (o novo ou a cópia salva) e inicie-o de novo.",
                "Stop linkpronto, decide which file to keep (the new one or the saved copy) and start it again.",
            ),
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()
