# ruff: noqa: E402 - the bytecode switch below goes before every import, on purpose
"""Fixtures shared by every test package (the LiveKit test double as a child process and in-process,
a real sshd) and the hooks of the test tiers and CI strictness (:mod:`helpers.tiers`)."""

from __future__ import annotations

import os
import sys

# Keep compiled test modules (pytest's assertion rewriting) and linkpronto's between runs even where
# the environment sets PYTHONDONTWRITEBYTECODE=1 (this build machine does): recompiling everything cost
# ~5 s of every fast-tier run. They go to the git-ignored __pycache__ directories, as Python's default.
sys.dont_write_bytecode = False

from collections.abc import Iterator
from pathlib import Path

import pytest

from doubles.livekit_server import RunningDouble, run_double
from fixtures.clinic import Clinic
from fixtures.databases import database_url, pg_url, postgres_server, redis_server  # noqa: F401 - fixtures
from fixtures.livekit_real import LIVEKIT_VERSION, RealLivekit, livekit_binary
from fixtures.netns import Topology, netns_available
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
    share_default_tls_context,
)
from linkpronto import config
from linkpronto.config import VerifySettings

IN_CI = in_ci()
# The media rung (media/rung.py) needs real WebRTC: the LiveKit double carries no media, so it is off
# unless a test turns it on (the real-LiveKit media tests pass verify.media_interval as a flag).
os.environ.setdefault("LINKPRONTO_VERIFY_MEDIA_INTERVAL", "0")  # children: load_settings reads env
_verify_fields = VerifySettings.model_fields  # in-process: defaults() reads no env
_verify_fields["media_interval"].default = 0.0
for _model in (VerifySettings, config.Settings, config._ExplicitSettings):
    _model.model_rebuild(force=True)
share_default_tls_context()  # test clients share one TLS context (see helpers.tiers)
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
def topology(request: pytest.FixtureRequest) -> Iterator[Topology]:
    """An empty network topology of our own (fixtures/netns.py); removed after the test."""
    require(netns_available(), "network namespaces (root and iproute2's ip)")
    with Topology(request.node.name[:3].lower().replace("_", "")) as topo:
        yield topo


@pytest.fixture
def real_livekit_binary() -> Path:
    """The real livekit-server v1.13.5 (scripts/dev.py test builds it with go install)."""
    binary = livekit_binary()
    require(binary is not None, f"livekit-server {LIVEKIT_VERSION} (python3 scripts/dev.py setup --tests builds it)")
    assert binary is not None
    return binary


@pytest.fixture
def real_livekit(topology: Topology, real_livekit_binary: Path) -> Iterator[RealLivekit]:
    """The real livekit-server alone on a host ``lk`` (198.18.20.2) that the test process reaches."""
    lan = topology.network("lklan", "198.18.20.0/24")
    host = topology.host("lk")
    topology.attach(host, lan, "198.18.20.2", default=True)
    topology.link_root(lan, "198.18.20.254")
    with RealLivekit({TEST_KEY: TEST_SECRET}, host=host, ip="198.18.20.2") as lk:
        yield lk


@pytest.fixture
def sshd() -> Iterator[SshServer]:
    """A real sshd on a free 127.0.0.1 port with its own keys (the far end of an ``ssh -R`` tunnel)."""
    require(sshd_available(), "openssh-server (/usr/sbin/sshd)")
    server = SshServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    """The standard topology (fixtures/clinic.py): laptop, router, vps (real sshd), wifi_phone, 4g_phone.
    One per module: start linkpronto in it with ``clinic.linkpronto(data_dir).start()``."""
    require(netns_available(), "network namespaces (root and iproute2's ip)")
    require(sshd_available(), "openssh-server (/usr/sbin/sshd)")
    with Clinic("cl", workdir=tmp_path_factory.mktemp("clinic")) as topo:
        yield topo
