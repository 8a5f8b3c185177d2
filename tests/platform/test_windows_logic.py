"""The Windows branch's pure logic (flags, argv building), tested on every OS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from linkpronto.errors import BinaryNotFound, ConfigInvalid
from linkpronto.platform import _windows


def fake_which(found: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda name: found.get(name)


def test_creation_flags_are_a_new_process_group_sharing_the_console() -> None:
    flags = _windows.creation_flags()
    assert flags & _windows.CREATE_NEW_PROCESS_GROUP
    assert not flags & 0x08000000  # CREATE_NO_WINDOW would make CTRL_BREAK impossible
    assert not flags & 0x00000008  # nor DETACHED_PROCESS


def test_the_tree_asks_for_those_flags() -> None:
    assert _windows.ProcessTree().popen_kwargs() == {"creationflags": _windows.CREATE_NEW_PROCESS_GROUP}


def test_npx_resolves_to_npx_cmd() -> None:
    which = fake_which({"npx": r"C:\Program Files\nodejs\npx.cmd"})
    assert _windows.build_argv(["npx", "next", "dev", "-p", "3001"], which) == [
        r"C:\Program Files\nodejs\npx.cmd", "next", "dev", "-p", "3001"]


@pytest.mark.parametrize("arg", ["a&b", "50%", "x|y", "<in", "out>", "say \"hi\"", "^", "wow!", "a\nb"])
def test_batch_files_refuse_arguments_cmd_would_interpret(arg: str) -> None:
    which = fake_which({"npm": r"C:\nodejs\npm.CMD"})
    with pytest.raises(ConfigInvalid) as caught:
        _windows.build_argv(["npm", "run", arg], which)
    assert "cmd.exe" in caught.value.text.en


def test_real_executables_take_any_argument() -> None:
    which = fake_which({"node": r"C:\nodejs\node.exe"})
    assert _windows.build_argv(["node", "-e", "console.log('a&b|c')"], which)[2] == "console.log('a&b|c')"


def test_missing_program_is_binary_not_found() -> None:
    with pytest.raises(BinaryNotFound):
        _windows.build_argv(["livekit-server"], fake_which({}))
    with pytest.raises(ConfigInvalid):
        _windows.build_argv([], fake_which({}))


def test_is_batch() -> None:
    assert _windows.is_batch(r"C:\x\npx.cmd") and _windows.is_batch("run.BAT")
    assert not _windows.is_batch("node.exe") and not _windows.is_batch("cmd")


def test_win32_calls_are_inert_elsewhere() -> None:
    tree = _windows.ProcessTree()
    tree.terminate()  # no pid yet: nothing to do
    assert not tree.alive()
    assert _windows.set_parent_death_signal() is False


# -- the tree kill without a Job Object (_kill_with_psutil), with a hand-written psutil stand-in ------
class FakeProc:
    def __init__(self, pid: int, children: list[FakeProc] | None = None, *, deny: bool = False,
                 gone: bool = False, killed: list[int] | None = None) -> None:
        self.pid, self._children, self.deny, self.gone = pid, children or [], deny, gone
        self.killed = killed if killed is not None else []

    def children(self, recursive: bool = False) -> list[FakeProc]:
        assert recursive, "the whole tree, not just the direct children"
        out: list[FakeProc] = []
        for child in self._children:
            out += [child, *child.children(recursive=True)]
        return out

    def kill(self) -> None:
        if self.gone:
            raise psutil.NoSuchProcess(self.pid)
        if self.deny:
            raise psutil.AccessDenied(self.pid)
        self.killed.append(self.pid)


def _tree(monkeypatch: pytest.MonkeyPatch, root: FakeProc | None) -> None:
    def process(pid: int) -> FakeProc:
        if root is None or pid != root.pid:
            raise psutil.NoSuchProcess(pid)
        return root

    monkeypatch.setattr(_windows.psutil, "Process", process)


def test_kill_with_psutil_kills_every_descendant_then_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    grandchild = FakeProc(12, killed=killed)
    root = FakeProc(10, [FakeProc(11, [grandchild], killed=killed), FakeProc(13, killed=killed)], killed=killed)
    _tree(monkeypatch, root)
    _windows._kill_with_psutil(10)
    assert sorted(killed[:-1]) == [11, 12, 13] and killed[-1] == 10  # the root last: no orphan re-parented


def test_kill_with_psutil_goes_on_past_denied_and_vanished_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    root = FakeProc(20, [FakeProc(21, deny=True), FakeProc(22, gone=True), FakeProc(23, killed=killed)],
                    killed=killed)
    _tree(monkeypatch, root)
    _windows._kill_with_psutil(20)
    assert killed == [23, 20]


def test_kill_with_psutil_of_a_process_already_gone_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(monkeypatch, None)
    _windows._kill_with_psutil(30)  # nothing to kill, nothing raised


def test_process_tree_without_a_job_falls_back_to_the_psutil_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(_windows, "_kill_with_psutil", seen.append)
    monkeypatch.setattr(_windows.psutil, "pid_exists", lambda pid: pid == 40)
    tree = _windows.ProcessTree()
    tree.attach(40)  # no Job Object off Windows (and on Windows when it cannot be made)
    assert tree.alive()
    tree.kill()
    assert seen == [40]
    tree.release()


@pytest.mark.only_on("posix")  # on Windows these are real calls: test_locks_are_real_on_windows
def test_locks_and_permissions_are_inert_off_windows(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    with path.open("r+") as fh:
        assert _windows.try_lock(fh.fileno()) is False
        _windows.unlock(fh.fileno())
    assert _windows.make_private(path) is None
    assert _windows.reaper_pid() is None


@pytest.mark.slow
def test_kill_with_psutil_kills_a_real_tree() -> None:
    """Real processes (POSIX here, Windows in hosted CI's slow runs): a child and its grandchild."""
    code = ("import subprocess, sys, time; "
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(g.pid, flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        _windows._kill_with_psutil(child.pid)
        child.wait(10)
        try:
            grand = psutil.Process(grandchild)
        except psutil.NoSuchProcess:
            return
        _, alive = psutil.wait_procs([grand], timeout=10)
        assert not alive, alive
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)


@pytest.mark.only_on("windows")
def test_locks_are_real_on_windows(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    with path.open("r+") as first, path.open("r+") as second:
        assert _windows.try_lock(first.fileno()) is True
        assert _windows.try_lock(second.fileno()) is False  # held by the first handle
        _windows.unlock(first.fileno())
        assert _windows.try_lock(second.fileno()) is True
        _windows.unlock(second.fileno())


# -- the Job Object: its layout on every OS, the real thing on Windows (hosted CI's windows job) ----------
def test_job_object_structures_have_the_windows_sdk_layout() -> None:
    """winnt.h: JOBOBJECT_EXTENDED_LIMIT_INFORMATION is 144 bytes on 64-bit (112 on 32-bit) with
    LimitFlags at 16; a wrong field type here means SetInformationJobObject gets garbage (or fails) and
    no child dies with linkpronto."""
    import ctypes

    wide = ctypes.sizeof(ctypes.c_void_p) == 8
    assert ctypes.sizeof(_windows.IoCounters) == 48
    assert ctypes.sizeof(_windows.BasicLimit) == (64 if wide else 48)
    assert ctypes.sizeof(_windows.ExtendedLimit) == (144 if wide else 112)
    assert _windows.BasicLimit.LimitFlags.offset == 16
    assert _windows.BasicLimit.ActiveProcessLimit.offset == (40 if wide else 28)
    assert _windows.ExtendedLimit.IoInfo.offset == (64 if wide else 48)
    assert ctypes.sizeof(_windows.BasicAccounting) == 48 and _windows.BasicAccounting.ActiveProcesses.offset == 40
    info = _windows.kill_on_close_limits()
    raw = bytes(info)
    assert int.from_bytes(raw[16:20], "little") == _windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE == 0x2000
    assert raw[:16] == bytes(16) and raw[20:] == bytes(len(raw) - 20)  # nothing else limited


_TREE = ("import subprocess, sys, time; "
         "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
         "print(g.pid, flush=True); time.sleep(120)")


def _child_with_grandchild(tree: _windows.ProcessTree) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen([sys.executable, "-c", _TREE], stdout=subprocess.PIPE, text=True,
                             **tree.popen_kwargs())
    tree.attach(child.pid)  # before the grandchild starts: it is born inside the job
    assert child.stdout is not None
    return child, int(child.stdout.readline())


def _all_gone(pids: list[int]) -> bool:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=15)
    return not alive


@pytest.mark.slow
@pytest.mark.only_on("windows")
def test_closing_the_job_kills_the_child_and_its_grandchild() -> None:
    """Kill-on-close, for real: what happens to every child when linkpronto dies (its handles close)."""
    tree = _windows.ProcessTree()
    child, grandchild = _child_with_grandchild(tree)
    try:
        assert tree._job is not None, "the child was not put in a Job Object"
        assert tree._job.active_processes() == 2  # the child and its grandchild, both in the job
        assert tree.alive()
        tree.release()  # the last handle closes: JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        assert _all_gone([child.pid, grandchild])
    finally:
        if child.poll() is None:
            child.kill()


@pytest.mark.slow
@pytest.mark.only_on("windows")
def test_kill_terminates_the_whole_job() -> None:
    tree = _windows.ProcessTree()
    child, grandchild = _child_with_grandchild(tree)
    try:
        tree.kill()  # TerminateJobObject: the second stop stage
        assert _all_gone([child.pid, grandchild])
        assert not tree.alive()
    finally:
        tree.release()
        if child.poll() is None:
            child.kill()
