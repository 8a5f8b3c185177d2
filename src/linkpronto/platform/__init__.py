"""Everything that differs between Windows, macOS and Linux, behind one set of functions.

This package is the only place in linkpronto with platform branches. The branches themselves are
``_posix.py`` (process groups, ``PR_SET_PDEATHSIG``, a reaper process, ``fcntl.flock``) and
``_windows.py`` (``CREATE_NEW_PROCESS_GROUP``, ``CTRL_BREAK_EVENT``, Job Objects,
``msvcrt.locking``); this module picks one and adds what is the same everywhere:

* :func:`new_process_tree` — a handle on a child and all its descendants: spawn options,
  graceful terminate, tree kill, "is anything of it still alive", and the guarantee that the tree
  dies with the orchestrator (even on SIGKILL or a closed console window).
* :func:`build_argv` — ``argv[0]`` resolved through PATH (``npx`` → ``npx.cmd`` on Windows);
  :func:`executable_name` — ``livekit-server`` → ``livekit-server.exe`` on Windows.
* :func:`orchestrator_lock`, :func:`write_orchestrator_info`, :func:`read_orchestrator_info` —
  one orchestrator per data directory.
* :func:`write_private` — owner-only files (``0600`` on POSIX; on Windows the user profile's
  inherited ACL, documented best effort).
* :func:`lan_address` and :func:`port_holder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from linkpronto.errors import AlreadyRunning
from linkpronto.i18n import Text

if sys.platform == "win32":
    from linkpronto.platform import _windows as _impl
else:
    from linkpronto.platform import _posix as _impl

IS_WINDOWS = sys.platform == "win32"
LOCK_FILE = "orchestrator.lock"
INFO_FILE = "orchestrator.json"
_O_BINARY: int = getattr(os, "O_BINARY", 0)


class ProcessTree(Protocol):
    """A supervised child and everything it spawns."""

    pid: int | None

    def popen_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for ``subprocess.Popen`` / ``asyncio.create_subprocess_exec``."""
        ...

    def attach(self, pid: int) -> None:
        """Call right after the child started: enrols it in the die-with-the-orchestrator guard."""
        ...

    def terminate(self) -> None:
        """Graceful stop request to the whole tree (SIGTERM to the group / CTRL_BREAK)."""
        ...

    def kill(self) -> None:
        """Forceful stop of the whole tree (SIGKILL to the group / TerminateJobObject)."""
        ...

    def alive(self) -> bool:
        """True while any process of the tree (zombies excepted) still exists."""
        ...

    def release(self) -> None:
        """Forget the tree (after it was stopped)."""
        ...


def new_process_tree() -> ProcessTree:
    return _impl.ProcessTree()


def build_argv(argv: Sequence[str], which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """Resolve ``argv[0]`` through PATH; on Windows also refuse unsafe ``.cmd`` arguments."""
    if sys.platform == "win32":
        return _impl.build_argv(argv, which)
    from linkpronto.platform._common import resolve_argv

    return resolve_argv(argv, which)


def executable_name(name: str, os_name: str | None = None) -> str:
    """``livekit-server`` → ``livekit-server.exe`` on Windows; unchanged elsewhere.

    The one place that knows the ``.exe`` rule. ``os_name`` (``"windows"``, ``"linux"``, ``"darwin"``,
    as the installers name release targets) asks about another system than this one."""
    windows = IS_WINDOWS if os_name is None else os_name == "windows"
    return f"{name}.exe" if windows and not name.lower().endswith(".exe") else name


def set_parent_death_signal(sig: int = 9) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies. False elsewhere."""
    return _impl.set_parent_death_signal(sig)


def reaper_pid() -> int | None:
    """The POSIX reaper's pid once started (tests exclude it when counting descendants)."""
    return _impl.reaper_pid()


# --- network -------------------------------------------------------------------------------------
def lan_address(probe_host: str = "192.0.2.1") -> str:
    """This machine's address on its LAN (the interface of the default route), or ``127.0.0.1``.

    Uses the UDP "connect" trick: connecting a datagram socket only picks a route and a source
    address; no packet is sent. ``probe_host`` is TEST-NET-1, never a real destination.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((probe_host, 9))
            address = str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"
    return address if address and address != "0.0.0.0" else "127.0.0.1"


def port_holder(port: int) -> tuple[int, str] | None:
    """``(pid, process name)`` of whoever listens on TCP ``port``, or None when unknown."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:  # macOS without root: look process by process (own processes only)
        return _port_holder_slow(port)
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid, _process_name(conn.pid)
    return None


def _port_holder_slow(port: int) -> tuple[int, str] | None:
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return proc.pid, str(proc.info.get("name") or "?")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    return None


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"


# --- files ---------------------------------------------------------------------------------------
def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to a file only its owner can read.

    POSIX: mode ``0600`` from creation (never briefly world-readable), then ``os.replace``.
    Windows: best effort — mode bits do not exist; a file under the user's profile (where the data
    directory normally lives) inherits an ACL granting only the user, SYSTEM and Administrators.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _impl.make_private(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def make_private_tree(root: Path) -> None:
    """The data directory and everything in it readable by its owner only: ``0700`` directories and
    ``0600`` files on POSIX (executables ``0700``); on Windows the user's own ACL (``icacls``)."""
    _impl.make_private_tree(root)


def create_private(path: Path) -> None:
    """Create ``path`` empty with owner-only permissions if it does not exist (before a library such
    as SQLite creates it with the process umask; SQLite gives ``-wal``/``-shm`` the same mode)."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o600)
        os.close(fd)
    _impl.make_private(path)


# --- file descriptors ----------------------------------------------------------------------------
def fd_limit() -> int | None:
    """How many descriptors this process may open (``RLIMIT_NOFILE``); None when there is no such
    limit (Windows) or it is unlimited."""
    return _impl.fd_limit()


def raise_fd_limit(target: int) -> int | None:
    """Raise the descriptor limit towards ``target`` where the OS allows it; returns the new limit."""
    return _impl.raise_fd_limit(target)


def write_orchestrator_info(data_dir: Path, info: dict[str, Any]) -> None:
    """What the lock holder tells a second ``linkpronto up`` (e.g. ``admin_url``, ``pid``)."""
    payload = {"pid": os.getpid(), **info}
    write_private(data_dir / INFO_FILE, json.dumps(payload, indent=2).encode("utf-8"))


def read_orchestrator_info(data_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((data_dir / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class OrchestratorLock:
    """Held for the orchestrator's lifetime; released by the OS if the process dies."""

    data_dir: Path
    fd: int

    def write_info(self, info: dict[str, Any]) -> None:
        write_orchestrator_info(self.data_dir, info)


@contextlib.contextmanager
def orchestrator_lock(data_dir: Path) -> Iterator[OrchestratorLock]:
    """One orchestrator per data directory; a second one gets :class:`AlreadyRunning`.

    The lock is ``fcntl.flock`` (POSIX) or ``msvcrt.locking`` (Windows) on ``<data_dir>/orchestrator.lock``:
    the OS drops it when the holder dies, so a crash never leaves a stale lock behind.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | _O_BINARY, 0o600)
    if not _impl.try_lock(fd):
        os.close(fd)
        raise _already_running(data_dir)
    try:
        yield OrchestratorLock(data_dir, fd)
    finally:
        info = read_orchestrator_info(data_dir)
        if info is not None and info.get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                (data_dir / INFO_FILE).unlink()
        _impl.unlock(fd)
        os.close(fd)


def _already_running(data_dir: Path) -> AlreadyRunning:
    info = read_orchestrator_info(data_dir) or {}
    admin_url = str(info.get("admin_url") or "")
    pid = info.get("pid")
    where_pt = f" (PID {pid})" if pid else ""
    where_en = where_pt
    if admin_url:
        message = Text(
            f"O linkpronto já está rodando para a pasta {data_dir}{where_pt}. Painel: {admin_url}",
            f"linkpronto is already running for the folder {data_dir}{where_en}. Dashboard: {admin_url}",
        )
        fix = Text(
            f"Use o que já está rodando (abra {admin_url}) ou pare-o com: linkpronto down",
            f"Use the one already running (open {admin_url}) or stop it with: linkpronto down",
        )
    else:
        message = Text(
            f"O linkpronto já está rodando para a pasta {data_dir}{where_pt}.",
            f"linkpronto is already running for the folder {data_dir}{where_en}.",
        )
        fix = Text(
            "Use o que já está rodando ou pare-o com: linkpronto down",
            "Use the one already running or stop it with: linkpronto down",
        )
    return AlreadyRunning(message, fix=fix, admin_url=admin_url or None, pid=pid)


def find_chromium(configured: str = "auto") -> Path | None:
    """A Chromium-family browser for the page rung: ``configured`` (a path), or the usual places.

    ``off`` (or ``none``/empty) means none. On Windows the per-machine and per-user installs of Chrome,
    Chromium and Edge; elsewhere ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH.
    """
    value = configured.strip()
    if value.lower() in ("", "off", "none", "false"):
        return None
    if value.lower() != "auto":
        p = Path(value)
        return p if p.is_file() else None
    if IS_WINDOWS:
        roots = [os.environ.get(k, "") for k in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        tails = ("Google/Chrome/Application/chrome.exe", "Chromium/Application/chrome.exe",
                 "Microsoft/Edge/Application/msedge.exe")
        for root in filter(None, roots):
            for tail in tails:
                candidate = Path(root) / tail
                if candidate.is_file():
                    return candidate
        return None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None
