"""``linkpronto`` as a real process: up, status, link create/list/revoke, env, down, restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import cli_env
from helpers.net import free_port

CLI = [sys.executable, "-m", "linkpronto"]


def env_for(tmp_path: Path, double: RunningDouble, public_port: int, admin_port: int) -> dict[str, str]:
    return cli_env(tmp_path / "data", double.url, public_port, admin_port)


def start_up(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "up"], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError("linkpronto up did not stop on SIGTERM:\n" + out) from None
    return out


def test_up_link_restart_link_survives(tmp_path: Path, livekit_double: RunningDouble) -> None:
    public_port, admin_port = free_port(), free_port()
    env = env_for(tmp_path, livekit_double, public_port, admin_port)
    proc = start_up(env, tmp_path)
    try:
        res = cli(env, tmp_path, "status", "--json", "--wait-ready", "20")
        assert res.returncode == 0, res.stdout + res.stderr
        status = json.loads(res.stdout)  # --json: one JSON document on stdout, nothing else
        assert status["state"] == "ready"
        res = cli(env, tmp_path, "link", "create", "--professional", "dra-ana", "--type", "psicologia", "--json")
        assert res.returncode == 0, res.stderr
        link = json.loads(res.stdout)
        assert link["status"] == "ready"
        token = link["url"].rsplit("/", 1)[1]
        res = cli(env, tmp_path, "link", "list", "--json")
        assert [i["id"] for i in json.loads(res.stdout)["items"]] == [link["id"]]
        res = cli(env, tmp_path, "env", "--format", "json")
        values = json.loads(res.stdout)
        assert values["NEXT_PUBLIC_SITE_URL"] == f"http://127.0.0.1:{public_port}"
        assert values["LINKPRONTO_ADMIN_TOKEN"] == "**********"
        res = cli(env, tmp_path, "env", "--write", str(tmp_path / ".env.local"))
        assert res.returncode == 0
        written = (tmp_path / ".env.local").read_text()
        assert "LINKPRONTO_ADMIN_TOKEN=" in written and "**********" not in written
        assert (tmp_path / ".env.local").stat().st_mode & 0o077 == 0
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out
    assert token not in out  # the console never shows a link token unless asked
    assert f"127.0.0.1:{admin_port}" in out and "admin-token" in out

    # Restart: the link is still there and joinable.
    proc = start_up(env, tmp_path)
    try:
        res = cli(env, tmp_path, "status", "--wait-ready", "20")
        assert res.returncode == 0, res.stdout + res.stderr
        joined = httpx.post(f"http://127.0.0.1:{public_port}/_linkpronto/api/join", json={"token": token}, timeout=10)
        assert joined.status_code == 200, joined.text
        # A second `up` on the same data directory is refused with the first one's admin URL.
        second = subprocess.run([*CLI, "up"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "error[ALREADY_RUNNING]" in second.stderr and f"127.0.0.1:{admin_port}" in second.stderr
        res = cli(env, tmp_path, "link", "revoke", link["id"])
        assert res.returncode == 0
        res = cli(env, tmp_path, "down")
        assert res.returncode == 0, res.stderr
        proc.wait(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            stop(proc)


def test_errors_and_exit_codes(tmp_path: Path, livekit_double: RunningDouble) -> None:
    public_port, admin_port = free_port(), free_port()
    env = env_for(tmp_path, livekit_double, public_port, admin_port)
    # Not running: error[CODE] + fix on stderr, exit 1.
    res = cli(env, tmp_path, "status")
    assert res.returncode == 1
    assert res.stderr.startswith("error[NOT_RUNNING]") and "\nfix: " in res.stderr
    # Invalid configuration: CONFIG_INVALID naming the key, exit 1.
    bad = dict(env, LINKPRONTO_LIVEKIT_MODE="docker")
    res = cli(bad, tmp_path, "up")
    assert res.returncode == 1 and "error[CONFIG_INVALID]" in res.stderr and "livekit.mode" in res.stderr
    # Usage error: exit 2.
    assert cli(env, tmp_path, "link", "create").returncode == 2
    # Port in use: PORT_IN_USE naming the holder.
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", admin_port))
    holder.listen()
    try:
        res = cli(env, tmp_path, "up")
    finally:
        holder.close()
    assert res.returncode == 1 and "error[PORT_IN_USE]" in res.stderr
    assert str(admin_port) in res.stderr and f"PID {os.getpid()}" in res.stderr


def test_not_ready_exit_code(tmp_path: Path, livekit_double: RunningDouble) -> None:
    public_port, admin_port = free_port(), free_port()
    env = env_for(tmp_path, livekit_double, public_port, admin_port)
    env["LINKPRONTO_TUNNEL_STATIC_URL"] = f"http://127.0.0.1:{free_port()}"  # leads nowhere
    proc = start_up(env, tmp_path)
    try:
        deadline = time.monotonic() + 15
        while not (tmp_path / "data" / "orchestrator.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        res = cli(env, tmp_path, "status", "--wait-ready", "1")
        assert res.returncode == 3
        res = cli(env, tmp_path, "link", "create", "--professional", "p", "--wait", "1", "--json")
        assert res.returncode == 3
        assert json.loads(res.stdout)["status"] == "preparing"
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "commands"),
    [
        (["--help"], ["up", "status", "link", "doctor", "down", "env", "install"]),
        (["link", "--help"], ["create", "list", "revoke"]),
    ],
)
@pytest.mark.slow
def test_python_dash_m_is_the_same_program(args: list[str], commands: list[str]) -> None:
    res = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    assert all(c in res.stdout for c in commands), res.stdout


@pytest.mark.slow
@pytest.mark.only_on("posix")  # SIGKILL and a shell-script livekit-server
def test_sigkill_of_up_loses_no_link_and_leaves_no_child(tmp_path: Path) -> None:
    import psutil

    double = Path(__file__).parent / "doubles" / "livekit_server.py"
    script = tmp_path / "bin" / "livekit-server"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -u {double} "$@"\n')
    script.chmod(0o755)
    public_port, admin_port, lk_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINKPRONTO_", "LIVEKIT_", "NGROK_"))}
    env.update(
        LINKPRONTO_SERVER_DATA_DIR=str(tmp_path / "data"),
        LINKPRONTO_SERVER_ADMIN_PORT=str(admin_port),
        LINKPRONTO_SERVER_PUBLIC_PORT=str(public_port),
        LINKPRONTO_TUNNEL_PROVIDER="static",
        LINKPRONTO_TUNNEL_STATIC_URL=f"http://127.0.0.1:{public_port}",
        LINKPRONTO_LIVEKIT_MODE="local",
        LINKPRONTO_VERIFY_MEDIA_INTERVAL="0",  # the double carries no media: no media rung
        LINKPRONTO_VERIFY_PAGE_BROWSER="off",
        LINKPRONTO_LIVEKIT_BINARY=str(script),
        LINKPRONTO_LIVEKIT_PORT=str(lk_port),
        LINKPRONTO_LIVEKIT_TCP_PORT=str(free_port()),
        LINKPRONTO_LIVEKIT_UDP_PORT=str(free_port()),
    )
    proc = start_up(env, tmp_path)
    try:
        assert cli(env, tmp_path, "status", "--wait-ready", "30").returncode == 0
        res = cli(env, tmp_path, "link", "create", "--professional", "p", "--json")
        link = json.loads(res.stdout)
        token = link["url"].rsplit("/", 1)[1]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("livekit_server.py" in " ".join(c.cmdline()) for c in children)
        proc.kill()  # SIGKILL: no clean-up code runs in the orchestrator
        proc.wait(10)
        _gone, alive = psutil.wait_procs(children, timeout=2.5)
        assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], alive
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    # Restart on the same data directory: the stale lock and info file do not block it, and the link is intact.
    proc = start_up(env, tmp_path)
    try:
        assert cli(env, tmp_path, "status", "--wait-ready", "30").returncode == 0
        joined = httpx.post(f"http://127.0.0.1:{public_port}/_linkpronto/api/join", json={"token": token}, timeout=10)
        assert joined.status_code == 200, joined.text
    finally:
        stop(proc)
