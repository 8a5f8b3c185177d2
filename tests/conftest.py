"""Fixtures shared by every test package (the LiveKit test double as a child process and in-process,
a real sshd) and the hooks of the test tiers and CI strictness (:mod:`helpers.tiers`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from doubles.livekit_server import RunningDouble, run_double
from fixtures.databases import database_url, pg_url, postgres_server, redis_server  # noqa: F401 - fixtures
from fixtures.sshd import SshServer, sshd_available
from helpers.inproc import InProcessDouble, run_double_in_process
from helpers.lp import TEST_KEY, TEST_SECRET

# The tiers and CI strictness live in helpers/tiers.py; pytest finds these hooks here.
from helpers.tiers import (  # noqa: F401
    in_ci,
    pytest_collection_modifyitems,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    require,
)

IN_CI = in_ci()
pytest_plugins = ["pytester"]  # tests/test_tiers.py runs small pytest sessions in-process


@pytest.fixture(scope="session")
def livekit_double() -> Iterator[RunningDouble]:
    with run_double({TEST_KEY: TEST_SECRET}) as double:
        yield double


@pytest.fixture(scope="session")
def livekit_inproc() -> Iterator[InProcessDouble]:
    """The same double served from this process (fast tier): use it unless the process matters."""
    with run_double_in_process({TEST_KEY: TEST_SECRET}) as double:
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
