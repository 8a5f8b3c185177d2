"""Windows branch: new process groups, CTRL_BREAK, Job Objects that die with the orchestrator.

* Every child starts with ``CREATE_NEW_PROCESS_GROUP``, so ``CTRL_BREAK_EVENT`` reaches it (and only
  it) for a graceful stop. It keeps the orchestrator's console: a console event cannot reach a
  process that has none, so ``CREATE_NO_WINDOW`` is deliberately not used.
* Every child is assigned, right after it starts, to its own Job Object created with
  ``JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE``. Grandchildren join the job automatically. Only the
  orchestrator holds the job handle (not inheritable), so when the orchestrator exits, crashes, is
  killed from Task Manager or its console window is closed, Windows closes the handle and kills
  the whole tree. ``TerminateJobObject`` is also the tree kill of the second stop stage.
* ``.cmd``/``.bat`` programs (``npx`` is ``npx.cmd``) run through ``cmd.exe``, which re-parses the
  command line: arguments with cmd metacharacters are refused rather than risk injection
  (the "BatBadBut" problem).

The pure logic (flags, argv building) is importable and tested on every OS; everything that calls
the Win32 API sits behind ``sys.platform == "win32"`` checks.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.platform._common import resolve_argv

log = logging.getLogger(__name__)

CREATE_NEW_PROCESS_GROUP = 0x00000200
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS = 9
JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION_CLASS = 1
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100
BATCH_SUFFIXES = (".cmd", ".bat")
# Characters cmd.exe interprets even inside quotes, or that break its quoting.
BATCH_UNSAFE = frozenset('"%!^&|<>\r\n')


def creation_flags() -> int:
    """``creationflags`` for a supervised child: its own process group, the orchestrator's console."""
    return CREATE_NEW_PROCESS_GROUP


def is_batch(path: str) -> bool:
    return path.lower().endswith(BATCH_SUFFIXES)


def build_argv(
    argv: Sequence[str],
    which: Callable[[str], str | None] = shutil.which,
) -> list[str]:
    """Resolve ``argv[0]`` (``npx`` → ``C:\\...\\npx.cmd``) and refuse unsafe batch-file arguments."""
    resolved = resolve_argv(argv, which)
    args = resolved[1:]
    if is_batch(resolved[0]):
        bad = [a for a in args if BATCH_UNSAFE & set(a)]
        if bad:
            raise ConfigInvalid(
                Text(
                    f"O comando '{argv[0]}' é um arquivo .cmd/.bat e o argumento {bad[0]!r} tem caracteres "
                    "que o cmd.exe interpretaria (\" % ! ^ & | < >).",
                    f"The command '{argv[0]}' is a .cmd/.bat file and the argument {bad[0]!r} contains "
                    "characters cmd.exe would interpret (\" % ! ^ & | < >).",
                ),
                fix=Text(
                    "Remova esses caracteres do comando, ou rode o programa diretamente (por exemplo "
                    "'node caminho\\do\\script.js' em vez de 'npx').",
                    "Remove those characters from the command, or run the program directly (for example "
                    "'node path\\to\\script.js' instead of 'npx').",
                ),
            )
    return resolved


# The Job Object structures, spelled with fixed-width types (DWORD is 32 bits on Windows; ``wintypes``
# would make it a C ``long``, 64 bits off Windows), so their layout is testable on every OS: on 64-bit
# JOBOBJECT_EXTENDED_LIMIT_INFORMATION is 144 bytes with LimitFlags at offset 16 (112 and 16 on 32-bit),
# as the Windows SDK's winnt.h lays them out.
class IoCounters(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
        "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]


class BasicLimit(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_longlong),
        ("PerJobUserTimeLimit", ctypes.c_longlong),
        ("LimitFlags", ctypes.c_uint32),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class ExtendedLimit(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", BasicLimit),
        ("IoInfo", IoCounters),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


class BasicAccounting(ctypes.Structure):
    _fields_ = [
        ("TotalUserTime", ctypes.c_longlong),
        ("TotalKernelTime", ctypes.c_longlong),
        ("ThisPeriodTotalUserTime", ctypes.c_longlong),
        ("ThisPeriodTotalKernelTime", ctypes.c_longlong),
        ("TotalPageFaultCount", ctypes.c_uint32),
        ("TotalProcesses", ctypes.c_uint32),
        ("ActiveProcesses", ctypes.c_uint32),
        ("TotalTerminatedProcesses", ctypes.c_uint32),
    ]


def kill_on_close_limits() -> ExtendedLimit:
    """The limits every child's job gets: kill everything in it when its last handle closes."""
    info = ExtendedLimit()
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
    return info


class _Job:
    """A Job Object handle (Windows only)."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    @classmethod
    def create(cls) -> _Job | None:
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            kernel32.CreateJobObjectW.restype = wintypes.HANDLE
            handle = kernel32.CreateJobObjectW(None, None)
            if not handle:
                log.warning("CreateJobObjectW failed: %s", ctypes.get_last_error())
                return None
            info = kill_on_close_limits()
            ok = kernel32.SetInformationJobObject(
                wintypes.HANDLE(handle), JOB_OBJECT_EXTENDED_LIMIT_INFORMATION_CLASS,
                ctypes.byref(info), ctypes.sizeof(info),
            )
            if not ok:
                log.warning("SetInformationJobObject failed: %s", ctypes.get_last_error())
                kernel32.CloseHandle(wintypes.HANDLE(handle))
                return None
            return cls(int(handle))
        return None

    def assign(self, pid: int) -> bool:
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            kernel32.OpenProcess.restype = wintypes.HANDLE
            process = kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
            if not process:
                return False
            try:
                return bool(kernel32.AssignProcessToJobObject(wintypes.HANDLE(self.handle),
                                                              wintypes.HANDLE(process)))
            finally:
                kernel32.CloseHandle(wintypes.HANDLE(process))
        return False

    def active_processes(self) -> int | None:
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            info = BasicAccounting()
            ok = kernel32.QueryInformationJobObject(
                wintypes.HANDLE(self.handle), JOB_OBJECT_BASIC_ACCOUNTING_INFORMATION_CLASS,
                ctypes.byref(info), ctypes.sizeof(info), None,
            )
            return int(info.ActiveProcesses) if ok else None
        return None

    def terminate(self) -> bool:
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            return bool(kernel32.TerminateJobObject(wintypes.HANDLE(self.handle), 1))
        return False

    def close(self) -> None:
        if sys.platform == "win32":
            import ctypes
            from ctypes import wintypes

            kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
            kernel32.CloseHandle(wintypes.HANDLE(self.handle))


def _kill_with_psutil(pid: int) -> None:
    """Fallback tree kill when there is no job: the process and its descendants."""
    try:
        root = psutil.Process(pid)
        victims = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in victims:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.kill()


class ProcessTree:
    """A child and everything it spawns: its process group and its Job Object."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._job: _Job | None = None

    def popen_kwargs(self) -> dict[str, Any]:
        return {"creationflags": creation_flags()}

    def attach(self, pid: int) -> None:
        self.pid = pid
        job = _Job.create()
        if job is not None and job.assign(pid):
            self._job = job
        elif job is not None:
            log.warning("could not put pid %s in a job object; it may outlive a crash", pid)
            job.close()

    def terminate(self) -> None:
        if self.pid is None:
            return
        if sys.platform == "win32":
            import signal

            try:
                os.kill(self.pid, signal.CTRL_BREAK_EVENT)
            except OSError as exc:  # no shared console (e.g. pythonw): the kill stage follows
                log.debug("CTRL_BREAK to %s failed: %s", self.pid, exc)

    def kill(self) -> None:
        if self._job is not None and self._job.terminate():
            return
        if self.pid is not None:
            _kill_with_psutil(self.pid)

    def alive(self) -> bool:
        if self._job is not None:
            active = self._job.active_processes()
            if active is not None:
                return active > 0
        return self.pid is not None and psutil.pid_exists(self.pid)

    def release(self) -> None:
        if self._job is not None:
            self._job.close()  # kill-on-close: anything left in the job dies now
            self._job = None


def set_parent_death_signal(sig: int = 9) -> bool:
    """No such thing on Windows: the Job Object does this job."""
    return False


def reaper_pid() -> int | None:
    return None


def try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    return False


def unlock(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def make_private(path: Path) -> None:
    """Best effort on Windows: files under the user's profile already inherit an owner-only ACL
    (the profile grants the user, SYSTEM and Administrators). POSIX mode bits do not exist here."""
    return None


def _owner_only_argv(path: Path, user: str, recursive: bool) -> list[str]:
    """``icacls`` arguments that leave ``path`` readable by ``user`` alone (no inherited entries)."""
    grant = f"{user}:(OI)(CI)F" if path.is_dir() else f"{user}:F"
    argv = ["icacls", str(path), "/inheritance:r", "/grant:r", grant]
    if recursive:
        argv.append("/T")
    return argv


def _current_user() -> str:
    import getpass

    domain = os.environ.get("USERDOMAIN", "")
    user = getpass.getuser()
    return f"{domain}\\{user}" if domain else user


def make_private_tree(root: Path) -> None:
    """The data directory on Windows: the user's own ACL only — inheritance removed, full control
    granted to the current user, on the directory and (``/T``) everything in it. New files inherit
    it through the ``(OI)(CI)`` entry."""
    import subprocess

    if sys.platform != "win32":
        return
    icacls = shutil.which("icacls") or "icacls"
    argv = _owner_only_argv(root, _current_user(), recursive=True)
    argv[0] = icacls
    result = subprocess.run(argv, capture_output=True, check=False, timeout=30)
    if result.returncode != 0:
        log.warning("icacls could not restrict %s (exit %s)", root, result.returncode)


def fd_limit() -> int | None:
    """Windows has no per-process descriptor limit for sockets like ``RLIMIT_NOFILE``."""
    return None


def raise_fd_limit(target: int) -> int | None:
    return None
