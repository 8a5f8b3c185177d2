"""The tier rules themselves (helpers/tiers.py), run on small pytest sessions in this process."""

from __future__ import annotations

import pytest

from helpers import tiers
from helpers.tiers import refusing

PLUGIN = "from helpers.tiers import *  # noqa: F403\nfrom helpers.tiers import pytest_collection_modifyitems, pytest_runtest_call, pytest_runtest_makereport, pytest_runtest_setup\n"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    slow: x\n    only_on: x\n"


@pytest.fixture
def session(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(PLUGIN)
    pytester.makeini(INI)
    return pytester


def test_a_skip_fails_under_ci(session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    session.makepyfile(test_x="""
        import pytest
        def test_skips():
            pytest.skip("no sshd here")
        @pytest.mark.skipif(True, reason="not on this machine")
        def test_skipif():
            pass
        def test_passes():
            pass
    """)
    monkeypatch.setenv("CI", "true")
    result = session.runpytest_inprocess()
    result.assert_outcomes(passed=1, failed=1, errors=1)  # a skipif skips at set-up: an error
    result.stdout.fnmatch_lines(["*skipped under CI=true*no sshd here*"])
    monkeypatch.setenv("CI", "")
    session.runpytest_inprocess().assert_outcomes(passed=1, skipped=2)


def test_a_process_outside_the_slow_tier_fails_and_names_the_command(session: pytest.Pytester) -> None:
    # This test is itself in the fast tier: lift its own guard so that the inner session's is seen
    # alone. Nothing is started: the inner fast tests are refused before any fork, and the inner
    # slow test only checks that it would be allowed to. The guard is put back by this test itself,
    # not by monkeypatch: monkeypatch undoes at teardown, after the call phase's guard has restored
    # the real functions, and would leave the refusing ones in place for every later test.
    guarded = {key: getattr(*key) for key in tiers.ORIGINALS}
    for (owner, name), original in tiers.ORIGINALS.items():
        setattr(owner, name, original)
    try:
        _inner_session_refuses_processes(session)
    finally:
        for (owner, name), current in guarded.items():
            setattr(owner, name, current)
    assert refusing()  # still this fast test's own guard, until its call phase ends


def _inner_session_refuses_processes(session: pytest.Pytester) -> None:
    session.makepyfile(test_x="""
        import subprocess, sys, pytest
        from helpers.tiers import refusing
        def test_fast_starts_python():
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        @pytest.fixture
        def child():
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        def test_fast_fixture_starts_python(child):
            pass
        @pytest.mark.slow
        def test_slow_may_start_a_process():
            assert not refusing()
    """)
    result = session.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*ProcessInFastTier*starts a process*not marked slow*"])


def test_fixtures_that_start_processes_make_their_users_slow(session: pytest.Pytester) -> None:
    session.makepyfile(test_x="""
        import pytest
        @pytest.fixture
        def sshd():
            return None
        def test_uses_sshd(sshd):
            pass
        def test_plain():
            pass
    """)
    session.runpytest_inprocess("-m", "not slow").assert_outcomes(passed=1, deselected=1)
    session.runpytest_inprocess("-m", "slow").assert_outcomes(passed=1, deselected=1)


def test_a_test_for_another_platform_is_deselected_not_skipped(
    session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.makepyfile(test_x="""
        import pytest
        @pytest.mark.only_on("nosuchplatform")
        def test_elsewhere():
            pass
        @pytest.mark.only_on("posix", "windows")
        def test_everywhere():
            pass
    """)
    monkeypatch.setenv("CI", "true")
    session.runpytest_inprocess().assert_outcomes(passed=1, deselected=1)
