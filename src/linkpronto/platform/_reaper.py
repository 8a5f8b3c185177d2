"""The orchestrator's reaper (POSIX): kills the process groups it was told about when its stdin closes.

Run as ``python -S -u _reaper.py`` with stdin a pipe whose only write end the orchestrator holds.
Lines are ``+PGID`` (watch) and ``-PGID`` (forget). End-of-file means the orchestrator is gone, however
it died (SIGKILL included): every watched group gets SIGTERM, then SIGKILL after a short grace, so
nothing it started outlives it by more than about a second. Standard library only, no imports from
linkpronto, so it starts in a few milliseconds.
"""

import os
import signal
import sys
import time

assert sys.platform != "win32"  # POSIX only (tells mypy --platform win32 to skip the rest)

GRACE_S = 0.8


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_all(groups: set[int], sig: int) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone, or no longer ours


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    groups: set[int] = set()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if len(line) < 2 or not line[1:].isdigit():
            continue
        pgid = int(line[1:])
        if line[:1] == b"+":
            groups.add(pgid)
        elif line[:1] == b"-":
            groups.discard(pgid)
    if not groups:
        return 0
    _kill_all(groups, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and any(_alive(g) for g in groups):
        time.sleep(0.05)
    _kill_all(groups, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
