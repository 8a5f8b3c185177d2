"""``linkpronto up`` on a laptop without livekit-server: it installs it by itself, verified.

GitHub is played by the local release server of ``tests/install`` (reached through the
``stack.download_mirror`` setting); the archive's ``livekit-server`` is the LiveKit test double.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from install.release_double import ReleaseServer, checksums_txt, livekit_tar_gz, serve_releases
from linkpronto.install.common import platform_triple

DOUBLE = Path(__file__).resolve().parent.parent / "doubles" / "livekit_server.py"
VERSION = "1.13.9"
pytestmark = [pytest.mark.slow, pytest.mark.only_on("posix")]  # the archive's binary is a shell script


@pytest.fixture
def github() -> Iterator[ReleaseServer]:
    with serve_releases() as state:
        yield state


def publish(github: ReleaseServer, *, tamper: bool = False) -> None:
    os_name, arch = platform_triple()
    asset = f"livekit_{VERSION}_{os_name}_{arch}.tar.gz"
    binary = f'#!/bin/sh\nexec {sys.executable} -u {DOUBLE} "$@"\n'.encode()
    archive = livekit_tar_gz(binary)
    prefix = f"/livekit/livekit/releases/download/v{VERSION}"
    github.add(f"{prefix}/{asset}", livekit_tar_gz(binary + b"# tampered\n") if tamper else archive)
    github.add(f"{prefix}/checksums.txt", checksums_txt({asset: archive}))


def local_settings(tmp_path: Path, github: ReleaseServer, **stack: object) -> object:
    return settings_for(
        tmp_path / "d",
        livekit_url="",
        livekit={"mode": "local", "url": "", "api_key": "", "api_secret": "", "version": VERSION,
                 "port": free_port(), "tcp_port": free_port(), "udp_port": free_port()},
        stack={"download_mirror": github.base + "/download", **stack},
    )


async def test_up_installs_livekit_by_itself_and_becomes_ready(
    tmp_path: Path, github: ReleaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no livekit-server on PATH
    publish(github)
    settings = local_settings(tmp_path, github)
    async with run_lp(settings) as lp:  # type: ignore[arg-type]
        status = await lp.wait_state("ready", timeout=30)
        assert status["components"]["livekit"]["state"] == "ready"
        installed = settings.data_dir / "bin" / "livekit-server"  # type: ignore[attr-defined]
        assert installed.exists()
        assert any(r.endswith(".tar.gz") for r in github.requests)
        assert (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).status_code == 201


async def test_checksum_mismatch_fails_with_the_exact_command_and_installs_nothing(
    tmp_path: Path, github: ReleaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    publish(github, tamper=True)
    settings = local_settings(tmp_path, github)
    async with run_lp(settings) as lp:  # type: ignore[arg-type]
        status = await lp.wait_state("failed", timeout=30)
        problem = next(p for p in status["problems"] if p["code"] == "INSTALL_FAILED")
        assert "linkpronto install livekit" in problem["fix"]
        assert not (settings.data_dir / "bin" / "livekit-server").exists()  # type: ignore[attr-defined]
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})
        assert res.status_code == 503 and res.json()["error"]["code"] == "INSTALL_FAILED"


async def test_no_install_answers_binary_not_found(
    tmp_path: Path, github: ReleaseServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    publish(github)
    settings = local_settings(tmp_path, github, install=False)
    async with run_lp(settings) as lp:  # type: ignore[arg-type]
        status = await lp.wait_state("failed", timeout=15)
        problem = next(p for p in status["problems"] if p["code"] == "BINARY_NOT_FOUND")
        assert "linkpronto install livekit" in problem["fix"]
        assert not github.requests


def test_install_command_downloads_verifies_and_reports(tmp_path: Path, github: ReleaseServer) -> None:
    import os
    import subprocess

    publish(github)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKPRONTO_")}
    env.update(
        LINKPRONTO_SERVER_DATA_DIR=str(tmp_path / "data"),
        LINKPRONTO_STACK_DOWNLOAD_MIRROR=github.base + "/download",
        LINKPRONTO_LANG="en",
    )
    cmd = [sys.executable, "-m", "linkpronto", "install", "livekit", "--version", VERSION]
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    installed = tmp_path / "data" / "bin" / "livekit-server"
    assert installed.exists() and f"Installed: {installed}" in res.stdout
    # A tampered archive: INSTALL_FAILED with the exact command as the fix, nothing installed.
    installed.unlink()
    publish(github, tamper=True)
    res = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    lines = res.stderr.splitlines()  # the progress bar, then the error and its fix
    error = next(i for i, line in enumerate(lines) if line.startswith("error[INSTALL_FAILED]"))
    assert lines[error + 1].startswith("fix: ") and f"linkpronto install livekit --version {VERSION}" in lines[error + 1]
    assert not installed.exists()
