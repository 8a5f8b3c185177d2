"""Issue 19 finding 15: the reaper process (it outlives nothing but holds a pipe for the orchestrator's
whole life) carries no tunnel token and no LINKPRONTO_* secret in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.only_on("linux")]

SECRETS = {
    "NGROK_AUTHTOKEN": "ngrok-secret-value-1",
    "TUNNEL_TOKEN": "cloudflare-secret-value-2",
    "CLOUDFLARED_TOKEN": "cloudflare-secret-value-3",
    "LINKPRONTO_SERVER_ADMIN_TOKEN": "admin-secret-value-4",
    "LIVEKIT_API_SECRET": "livekit-secret-value-5",
}

PROBE = """
import os, sys, time
from linkpronto.platform import _posix
r = _posix.reaper()
print(r.pid, flush=True)
sys.stdin.readline()
"""


def test_the_reaper_inherits_no_secret() -> None:
    env = {**os.environ, **SECRETS}
    proc = subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        reaper_pid = int(proc.stdout.readline())
        environ = Path(f"/proc/{reaper_pid}/environ").read_bytes().decode("utf-8", "replace")
        for name, value in SECRETS.items():
            assert name not in environ and value not in environ, name
        assert "LINKPRONTO_" not in environ
        assert "PATH=" in environ  # what it does keep
    finally:
        proc.communicate("\n", timeout=10)
