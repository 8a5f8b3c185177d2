"""Count only the intended status as a success, in wrk runs and in Python client loops.

A benchmark that counts any 2xx (or any answer at all) as a success can "meet" its target on a
broken product: a create that answers 202 "preparing", a join that answers 401, a proxy that answers
502 are all fast. Here every answer whose status is not the one the measured operation exists to
produce is an error; errors are reported by status, and any error makes ``meets_target`` false.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from typing import Any

# wrk runs the script in every thread; ``done`` collects each thread's counters.
_LUA = """
wrk.method = {method}
{body}
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) lp_bad = 0; lp_seen = "" end
function response(status, headers, body)
  if status ~= {expected} then
    lp_bad = lp_bad + 1
    if string.len(lp_seen) < 200 then lp_seen = lp_seen .. status .. " " end
  end
end
function done(summary, latency, requests)
  local bad, seen = 0, ""
  for _, t in ipairs(threads) do bad = bad + t:get("lp_bad"); seen = seen .. t:get("lp_seen") end
  io.write("LP_UNEXPECTED " .. bad .. " " .. seen .. "\\n")
  io.write("LP_SOCKET_ERRORS " .. (summary.errors.connect + summary.errors.read + summary.errors.write
                                   + summary.errors.timeout) .. "\\n")
end
"""


def wrk_script(expected: int, method: str = "GET", body: str | None = None,
               headers: dict[str, str] | None = None) -> str:
    """A wrk Lua script (path) sending ``method`` with ``body``/``headers`` and counting every answer
    other than ``expected``."""
    lua = _LUA.format(
        method=json.dumps(method),
        body=f"wrk.body = {json.dumps(body)}" if body is not None else "",
        headers="\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in (headers or {}).items()),
        expected=int(expected),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(lua)
        return fh.name


_UNEXPECTED = re.compile(r"^LP_UNEXPECTED (\d+) ?(.*)$", re.M)
_SOCKET = re.compile(r"^LP_SOCKET_ERRORS (\d+)$", re.M)


def wrk_errors(out: str, expected: int) -> dict[str, Any]:
    """``{"expected": 201, "unexpected": N, "statuses": {"202": k, ...}, "socket_errors": M}`` from the
    output of a run with :func:`wrk_script`. ``statuses`` is a sample (the first ones per thread)."""
    m = _UNEXPECTED.search(out)
    s = _SOCKET.search(out)
    if m is None or s is None:
        raise SystemExit("wrk ran without the status-counting script:\n" + out)
    sample = Counter(m.group(2).split())
    return {"expected": expected, "unexpected": int(m.group(1)), "statuses_sample": dict(sample),
            "socket_errors": int(s.group(1))}


def error_count(errors: dict[str, Any]) -> int:
    return int(errors.get("unexpected", 0)) + int(errors.get("socket_errors", 0))


class Statuses:
    """For a Python client loop: ``tally(status)`` per answer; ``report()`` for the JSON."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.ok = 0
        self.other: Counter[int] = Counter()

    def tally(self, status: int) -> bool:
        if status == self.expected:
            self.ok += 1
            return True
        self.other[status] += 1
        return False

    @property
    def errors(self) -> int:
        return sum(self.other.values())

    def report(self) -> dict[str, Any]:
        return {"expected": self.expected, "ok": self.ok, "unexpected": self.errors,
                "statuses": {str(k): v for k, v in sorted(self.other.items())}}
