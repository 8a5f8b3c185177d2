"""Issue 19 finding 8: every command-line usage error keeps the CLI contract with the typer that pip
resolves (0.29+ bundles its own click, whose exceptions are not ``click``'s): exit 2, one
``error[USAGE]: …`` line and a ``fix:`` naming the command's --help on stderr, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from linkpronto.cli import _click_flavours

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "linkpronto"]


@pytest.mark.parametrize(
    ("args", "names", "help_of"),
    [
        (["doctor", "--bogus"], "--bogus", "doctor"),
        (["nosuchcmd"], "nosuchcmd", ""),
        (["link", "create", "--professional", "p", "--expires-in", "banana"], "--expires-in", "link create"),
        (["link", "create"], "--professional", "link create"),
        (["status", "--wait-ready", "soon"], "--wait-ready", "status"),
    ],
)
def test_usage_errors_exit_2_with_one_error_line_and_a_fix(args: list[str], names: str, help_of: str) -> None:
    res = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "LINKPRONTO_LANG": "en"})
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error[USAGE]: ") and names in lines[0]
    assert lines[1].startswith("fix: ") and f"{help_of} --help".strip() in lines[1]
    assert res.stdout == ""


def test_both_click_flavours_are_handled_when_installed() -> None:
    usage, _aborts = _click_flavours()
    import typer

    # Whatever click the installed typer raises from is among the handled ones.
    assert any(issubclass(typer.BadParameter, cls) for cls in usage)
