"""linkpronto.platform: lock, private files, LAN address, port holder, process trees (real processes)."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from linkpronto import platform
from linkpronto.errors import AlreadyRunning, BinaryNotFound

posix_only = pytest.mark.only_on("posix")


def test_lan_address_is_an_ipv4_address() -> None:
    address = platform.lan_address()
    assert isinstance(ipaddress.ip_address(address), ipaddress.IPv4Address)


def test_lan_address_falls_back_to_loopback_without_a_route() -> None:
    assert platform.lan_address("0.0.0.0") in ("127.0.0.1", platform.lan_address())


def test_write_private_is_owner_only_and_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "keys.json"
    platform.write_private(target, b"first")
    platform.write_private(target, b"second\n")
    assert target.read_bytes() == b"second\n"
    assert [p.name for p in target.parent.iterdir()] == ["keys.json"]  # no temp file left
    if sys.platform != "win32":
        assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_orchestrator_lock_refuses_a_second_holder_with_the_admin_url(tmp_path: Path) -> None:
    with platform.orchestrator_lock(tmp_path) as lock:
        lock.write_info({"admin_url": "http://127.0.0.1:7800"})
        assert platform.read_orchestrator_info(tmp_path) == {"pid": os.getpid(),
                                                            "admin_url": "http://127.0.0.1:7800"}
        with pytest.raises(AlreadyRunning) as caught, platform.orchestrator_lock(tmp_path):
            pass
        assert caught.value.code == "ALREADY_RUNNING"
        assert "http://127.0.0.1:7800" in caught.value.text.en
        assert "http://127.0.0.1:7800" in caught.value.text.pt
        assert caught.value.fix_text is not None and "linkpronto down" in caught.value.fix_text.en
        assert caught.value.context["admin_url"] == "http://127.0.0.1:7800"
    assert platform.read_orchestrator_info(tmp_path) is None  # the holder cleaned up
    with platform.orchestrator_lock(tmp_path):  # free again
        pass


@pytest.mark.slow
def test_orchestrator_lock_held_by_another_process(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from linkpronto import platform
        with platform.orchestrator_lock(Path({str(tmp_path)!r})) as lock:
            lock.write_info({{"admin_url": "http://127.0.0.1:7999"}})
            print("locked", flush=True)
            time.sleep(30)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning) as caught, platform.orchestrator_lock(tmp_path):
            pass
        assert "7999" in caught.value.text.en
        assert caught.value.context["pid"] == holder.pid
        holder.kill()  # a dead holder's lock is released by the OS: no stale lock
        holder.wait(5)
        with platform.orchestrator_lock(tmp_path):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(5)


def test_read_orchestrator_info_ignores_garbage(tmp_path: Path) -> None:
    (tmp_path / platform.INFO_FILE).write_text("{not json", encoding="utf-8")
    assert platform.read_orchestrator_info(tmp_path) is None
    (tmp_path / platform.INFO_FILE).write_text(json.dumps([1, 2]), encoding="utf-8")
    assert platform.read_orchestrator_info(tmp_path) is None


def test_port_holder_names_the_listening_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        holder = platform.port_holder(port)
        assert holder is not None
        assert holder[0] == os.getpid()
        assert holder[1] == psutil.Process().name()
    assert platform.port_holder(port) is None


def test_build_argv_resolves_through_path_or_says_binary_not_found() -> None:
    argv = platform.build_argv([Path(sys.executable).name, "-c", "pass"],
                               which=lambda name: sys.executable if name else None)
    assert argv == [sys.executable, "-c", "pass"]
    with pytest.raises(BinaryNotFound) as caught:
        platform.build_argv(["linkpronto-no-such-program-xyz"])
    assert "linkpronto-no-such-program-xyz" in caught.value.text.en


@pytest.mark.slow
@posix_only
def test_process_tree_terminates_and_kills_the_whole_group() -> None:
    tree = platform.new_process_tree()
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']);" \
           "print('up', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **tree.popen_kwargs())
    tree.attach(proc.pid)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert os.getpgid(proc.pid) == proc.pid  # its own group
        members = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert members and all(os.getpgid(m) == proc.pid for m in members)
        assert tree.alive()
        tree.terminate()
        proc.wait(5)
        deadline = time.monotonic() + 2
        while tree.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not tree.alive()
    finally:
        tree.kill()
        tree.release()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
@pytest.mark.only_on("linux")  # prctl is Linux only
def test_parent_death_signal_kills_the_direct_child() -> None:
    # A middle process starts a child with the tree's spawn options, then dies by SIGKILL.
    script = textwrap.dedent("""
        import subprocess, sys, time
        from linkpronto import platform
        tree = platform.new_process_tree()
        kw = tree.popen_kwargs()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], **kw)
        print(child.pid, flush=True)
        time.sleep(30)
    """)
    middle = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    middle.kill()
    middle.wait(5)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    else:
        psutil.Process(child).kill()
        pytest.fail("the child outlived its parent")
