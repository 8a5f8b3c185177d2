"""The test tiers and CI strictness, as pytest hooks (imported by tests/conftest.py).

- ``slow``: a test that starts a process (a LiveKit double, sshd, ssh, Chromium, node, a child
  Python...). Marked per module with ``pytestmark``, per test with ``@pytest.mark.slow``, or — for the
  shared fixtures that start one — here, by fixture name (:data:`SLOW_FIXTURES`).
- The fast tier (``pytest -m "not slow"``) is everything else: no child process, only in-process
  servers on the loopback. Enforced, not hoped for: outside ``slow``, starting a process raises
  :class:`ProcessInFastTier` naming the command.
- ``@pytest.mark.only_on("posix")``: a test that only makes sense on some platforms is deselected
  elsewhere — never skipped, so it cannot fail CI on the other platforms nor hide a skip.
- ``CI=true``: any skipped test is reported as failed, so a missing component never turns a run green.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Generator
from typing import Any

import pytest

# Fixtures that start a process (directly or through a fixture they use): any test using one is slow.
SLOW_FIXTURES = frozenset({
    "livekit_double",  # tests/doubles/livekit_server.py as a child process
    "sshd",  # a real sshd
    "pw", "browser", "bare_browser", "new_context",  # Playwright's node driver and Chromium
    "postgres_server", "pg_url", "redis_server",  # real PostgreSQL / redis-server (fixtures/databases.py)
    "topology", "real_livekit",  # network namespaces (fixtures/netns.py), the real livekit-server
    "clinic",  # the standard topology with a real sshd (fixtures/clinic.py)
})  # fmt: skip


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, what: str) -> None:
    """Skip locally when a component is missing; under CI=true a missing component is a failure
    (as is any skip: :func:`pytest_runtest_makereport`). Never call ``pytest.skip`` directly."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"missing in CI: {what}")
    pytest.skip(f"missing: {what}")


def runs_here(platforms: tuple[str, ...]) -> bool:
    """``posix``/``windows`` match ``os.name``; anything else is a ``sys.platform`` prefix."""
    for name in platforms:
        if name == "posix" and os.name == "posix":
            return True
        if name == "windows" and os.name == "nt":
            return True
        if name not in ("posix", "windows") and sys.platform.startswith(name):
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    elsewhere: list[pytest.Item] = []
    for item in items:
        used = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("real_livekit") is not None:
            used = used | {"real livekit-server"}  # the real-LiveKit tier is part of the slow tier
        if used and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.slow(reason=f"uses {', '.join(sorted(used))}"))
        only = [m.args for m in item.iter_markers("only_on")]
        (kept if all(runs_here(args) for args in only) else elsewhere).append(item)
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = kept


class ProcessInFastTier(AssertionError):
    """A test outside the ``slow`` tier tried to start a process."""


def _targets() -> list[tuple[Any, str, str]]:
    targets: list[tuple[Any, str, str]] = [(subprocess.Popen, "_execute_child", "subprocess")]
    targets += [(os, name, name) for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp")
                if hasattr(os, name)]
    return targets


# The real functions, for a test of these rules that runs a small pytest session inside a fast test.
ORIGINALS = {(owner, name): getattr(owner, name) for owner, name, _ in _targets()}


def refusing() -> bool:
    """True while starting a process raises :class:`ProcessInFastTier`."""
    return bool(getattr(subprocess.Popen._execute_child, "refuses", False))  # type: ignore[attr-defined]


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        argv = args[1] if what == "subprocess" and len(args) > 1 else args[:1]
        raise ProcessInFastTier(
            f"this test starts a process ({what}: {argv!r}) but is not marked slow; "
            "add @pytest.mark.slow (or pytestmark = pytest.mark.slow in its module)"
        )

    refuse.refuses = True  # type: ignore[attr-defined]
    return refuse


class no_processes:  # a context manager: reads like one
    """Outside the ``slow`` tier, starting a process raises :class:`ProcessInFastTier`.

    ``subprocess.Popen._execute_child`` is where ``subprocess.*``, asyncio's subprocesses and
    Playwright's driver all start their child; ``os.fork``/``os.posix_spawn`` cover the rest on POSIX.
    """

    def __init__(self, item: pytest.Item) -> None:
        self.active = item.get_closest_marker("slow") is None
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> None:
        if not self.active:
            return
        for owner, name, what in _targets():
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, _refuse(what))

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        self.saved.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    with no_processes(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    with no_processes(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Under CI=true a skip (``pytest.skip``, ``skipif``, ``importorskip``, a skipping fixture) fails."""
    report = yield
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (a skip is a failure in CI): {reason}"
    return report


def share_default_tls_context() -> None:
    """Every test-side ``httpx`` client with the default ``verify=True`` shares one TLS context.

    A new client otherwise reloads the CA bundle (~30 ms of CPU each; the fast tier makes hundreds,
    ``httpx.get`` included). Verification is unchanged: the same default context, made once. The
    product's own clients do the same through :func:`linkpronto.tls.client_context`."""
    import httpx._transports.default as transports

    from linkpronto.tls import client_context

    original = transports.create_ssl_context

    def shared(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is True and cert is None:
            return client_context()
        return original(verify=verify, cert=cert, trust_env=trust_env)

    transports.create_ssl_context = shared  # type: ignore[assignment]
