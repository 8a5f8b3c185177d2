"""Fixtures shared by every test package: the LiveKit test double, and CI strictness."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from doubles.livekit_server import RunningDouble, run_double
from fixtures.databases import database_url, pg_url, postgres_server, redis_server  # noqa: F401 - fixtures
from fixtures.sshd import SshServer, sshd_available
from helpers.lp import TEST_KEY, TEST_SECRET

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip locally when a component is missing; in CI (CI=true) a missing component is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"missing in CI: {what}")
    pytest.skip(f"missing: {what}")


@pytest.fixture(scope="session")
def livekit_double() -> Iterator[RunningDouble]:
    with run_double({TEST_KEY: TEST_SECRET}) as double:
        yield double


@pytest.fixture
def sshd() -> Iterator[SshServer]:
    """A real sshd on a free 127.0.0.1 port with its own keys (the far end of an ``ssh -R`` tunnel)."""
    require(sshd_available(), "openssh-server (/usr/sbin/sshd)")
    server = SshServer().start()
    try:
        yield server
    finally:
        server.close()
