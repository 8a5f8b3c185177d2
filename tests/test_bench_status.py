"""bench/_status.py: in the benchmarks only the intended status is a success."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import _status


def test_a_loop_counts_every_other_status_as_an_error() -> None:
    statuses = _status.Statuses(201)
    for code in (201, 201, 202, 401, 202, 502):
        statuses.tally(code)
    assert statuses.ok == 2 and statuses.errors == 4
    assert statuses.report() == {"expected": 201, "ok": 2, "unexpected": 4,
                                 "statuses": {"202": 2, "401": 1, "502": 1}}


def test_wrk_output_is_read_and_a_run_without_the_script_is_refused() -> None:
    out = "Requests/sec: 10.0\nLP_UNEXPECTED 3 202 202 401 \nLP_SOCKET_ERRORS 2\n"
    errors = _status.wrk_errors(out, 201)
    assert errors == {"expected": 201, "unexpected": 3, "statuses_sample": {"202": 2, "401": 1}, "socket_errors": 2}
    assert _status.error_count(errors) == 5
    with pytest.raises(SystemExit):
        _status.wrk_errors("Requests/sec: 10.0\n", 201)


def test_the_wrk_script_checks_the_exact_status() -> None:
    path = Path(_status.wrk_script(201, "POST", '{"a": 1}', {"Authorization": "Bearer x"}))
    try:
        lua = path.read_text()
    finally:
        path.unlink()
    assert "if status ~= 201 then" in lua and 'wrk.method = "POST"' in lua
    assert 'wrk.headers["Authorization"] = "Bearer x"' in lua
