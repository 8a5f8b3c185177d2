"""POSIX branch (Linux, macOS): process groups, parent-death signal, the reaper, file locks.

How a supervised child's whole tree is made to die with the orchestrator, even on SIGKILL:

* the child starts in its own session, so it leads a process group that also holds every
  grandchild it spawns (unless one of them calls ``setsid`` itself, as a daemon would);
* on Linux the child gets ``PR_SET_PDEATHSIG = SIGKILL`` (set in the forked child before ``exec``):
  the kernel kills it the moment the orchestrator's forking thread dies;
* grandchildren are not covered by that signal, so one tiny **reaper** process per orchestrator
  (``_reaper.py``, stdlib only) is told each group id over a pipe. The orchestrator holds the only
  write end; when the orchestrator dies, however it dies, the kernel closes it, the reaper reads
  end-of-file and kills every group it was told about (SIGTERM, a short grace, SIGKILL). This also
  covers macOS, which has no parent-death signal.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

assert sys.platform != "win32"  # tells mypy --platform win32 to skip the rest of this module

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
REAPER_SCRIPT = Path(__file__).with_name("_reaper.py")


# --- parent-death signal (Linux) -----------------------------------------------------------------
def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


_PRCTL = _load_prctl()


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent (thread) dies. Linux only."""
    if _PRCTL is None:
        return False
    return _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None]:
    """Runs in the forked child before exec: only async-signal-safe work (one prctl, one getppid)."""

    def preexec() -> None:
        set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


# --- the reaper ----------------------------------------------------------------------------------
_REAPER_KEEPS = ("PATH", "LANG", "LC_ALL", "TZ")


def _reaper_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Only the locale and PATH: never a secret, whatever the orchestrator's environment holds."""
    return {name: environ[name] for name in _REAPER_KEEPS if name in environ}


class _Reaper:
    """One per orchestrator process: kills the registered process groups when we die."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-u", str(REAPER_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl+C in the terminal must not kill the reaper first
            close_fds=True,
            # It reads group ids from a pipe and kills them: it needs no variable of ours, and must not
            # carry tunnel tokens or LINKPRONTO_* secrets for its whole (long) life (issue 19, 15).
            env=_reaper_environment(os.environ),
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None:
            return
        with self._lock:
            try:
                stdin.write(line.encode("ascii") + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError) as exc:  # the reaper died: log, protection is reduced
                log.warning("process reaper is gone (%s); children may outlive a crash", exc)


_reaper: _Reaper | None = None
_reaper_lock = threading.Lock()


def reaper() -> _Reaper:
    global _reaper  # process-wide by nature: one reaper per orchestrator process
    with _reaper_lock:
        if _reaper is None or _reaper.owner != os.getpid() or not _reaper.alive():
            _reaper = _Reaper()
        return _reaper


def reaper_pid() -> int | None:
    return _reaper.pid if _reaper is not None and _reaper.owner == os.getpid() else None


# --- the process tree ----------------------------------------------------------------------------
def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass  # exists, owned by someone else: fall through to the scan
    members: list[int] = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) != pgid:
                continue
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                continue
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied, PermissionError):
            continue
        members.append(pid)
    return members


class ProcessTree:
    """A child and everything it spawns: its process group, watched by the reaper."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._registered = False

    def popen_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"start_new_session": True}
        if _PRCTL is not None:
            kwargs["preexec_fn"] = _pdeathsig_preexec(os.getpid())
        return kwargs

    def attach(self, pid: int) -> None:
        self.pid = pid
        reaper().send(f"+{pid}")
        self._registered = True

    def _signal(self, sig: int) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def alive(self) -> bool:
        return self.pid is not None and bool(group_members(self.pid))

    def release(self) -> None:
        if self._registered and self.pid is not None:
            reaper().send(f"-{self.pid}")
        self._registered = False


# --- file lock -----------------------------------------------------------------------------------
def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


def make_private(path: Path) -> None:
    os.chmod(path, 0o600)


def make_private_tree(root: Path) -> None:
    """``root`` and every directory under it ``0700``; every file ``0600`` (``0700`` if executable)."""
    import stat

    os.chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(os.path.join(dirpath, name), 0o700)
        for name in filenames:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    continue
                os.chmod(path, 0o700 if st.st_mode & 0o111 else 0o600)


# --- file descriptors ----------------------------------------------------------------------------
def fd_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` (None when unlimited)."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_fd_limit(target: int) -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``target`` (never above the hard limit)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and want > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return fd_limit()
