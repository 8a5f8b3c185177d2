"""Fixtures for the tunnel tests: a real sshd, a stand-in for the public listener, leftover checks."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from fixtures.origin import ORIGIN_BODY, Origin
from fixtures.sshd import SshServer, sshd_available
from helpers.tiers import require

__all__ = ["ORIGIN_BODY", "Origin"]

def leftover_children() -> list[psutil.Process]:
    """Our descendants, except the supervisor's long-lived reaper helper."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "_reaper" in cmdline:
            continue
        out.append(child)
    return out


@pytest.fixture
def origin() -> Iterator[Origin]:
    server = Origin()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def sshd() -> Iterator[SshServer]:
    require(sshd_available(), "openssh-server (/usr/sbin/sshd) and the ssh client")
    server = SshServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test when a child process it started is still alive afterwards.

    Children that existed before the test (session fixtures such as the LiveKit double) are ignored.
    """
    before = {p.pid for p in leftover_children()}
    yield
    started = [p for p in leftover_children() if p.pid not in before]
    _, alive = psutil.wait_procs(started, timeout=3)
    assert not alive, f"processes left behind: {[p.cmdline() for p in alive]}"
