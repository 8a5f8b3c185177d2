"""Issue 19, MEDIUM 8: usage errors of the *installed* CLI (whatever click typer resolved: typer
0.2x bundles ``typer._click``) exit 2 with one ``error[USAGE]: …`` line and a fix, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.tiers import require

pytestmark = pytest.mark.slow
CLI = Path(sys.executable).with_name("linkpronto")


@pytest.mark.parametrize(
    "argv",
    [
        ["doctor", "--bogus"],
        ["nosuchcmd"],
        ["link", "create", "--professional", "dra", "--expires-in", "banana"],
        ["link", "create"],
        [],
    ],
    ids=["unknown-option", "unknown-command", "bad-value", "missing-option", "no-command"],
)
def test_usage_errors_exit_2_with_one_error_line_and_a_fix(argv: list[str], tmp_path: Path) -> None:
    require(CLI.exists(), "the installed linkpronto script")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LINKPRONTO_DATA_DIR": str(tmp_path / "d"),
           "LINKPRONTO_LANG": "en"}
    res = subprocess.run([str(CLI), *argv], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    errors = [line for line in res.stderr.splitlines() if line.startswith("error[")]
    assert len(errors) == 1 and errors[0].startswith("error[USAGE]: "), res.stderr
    assert len(errors[0]) > len("error[USAGE]: ") + 5, errors
    assert any(line.startswith("fix: ") for line in res.stderr.splitlines()), res.stderr

