"""Issue 11, attack 7: children inherit the user's environment minus linkpronto's secrets; the app
gets its documented variables and no tunnel credential."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import TEST_SECRET, run_lp, settings_for
from helpers.net import free_port
from linkpronto.supervise.env import child_environment

TUNNEL_CREDENTIALS = ("NGROK_AUTHTOKEN", "TUNNEL_TOKEN", "CLOUDFLARED_TOKEN")


def test_child_environment_drops_secrets_and_keeps_the_rest() -> None:
    base = {
        "PATH": "/usr/bin", "HOME": "/home/u", "MY_APP_SETTING": "1",
        "LIVEKIT_API_SECRET": "s", "NGROK_AUTHTOKEN": "n", "TUNNEL_TOKEN": "t", "CLOUDFLARED_TOKEN": "c",
        "LINKPRONTO_SERVER_DATABASE_URL": "postgresql://u:pw@h/db", "linkpronto_tunnel_cloudflared_token": "x",
    }
    env = child_environment(None, base)
    assert env == {"PATH": "/usr/bin", "HOME": "/home/u", "MY_APP_SETTING": "1"}
    # What a child needs comes from its own spec (e.g. the tunnel's token to the tunnel only).
    assert child_environment({"TUNNEL_TOKEN": "t"}, base)["TUNNEL_TOKEN"] == "t"


APP = """
import json, os, socket, sys
with open(sys.argv[1], "w") as f:
    json.dump(dict(os.environ), f)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen(8)
while True:
    c, _ = s.accept(); c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\nconnection: close\\r\\n\\r\\nok"); c.close()
"""


@pytest.mark.slow
async def test_the_apps_environment_holds_no_tunnel_credential(
    tmp_path: Path, livekit_double: RunningDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in TUNNEL_CREDENTIALS:
        monkeypatch.setenv(name, f"secret-{name.lower()}")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "the-orchestrators-own-secret")
    monkeypatch.setenv("LINKPRONTO_SERVER_DATABASE_URL_UNUSED", "postgresql://u:pw@h/db")
    monkeypatch.setenv("USER_OWN_SETTING", "kept")
    script = tmp_path / "app.py"
    script.write_text(APP)
    dump = tmp_path / "env.json"
    port = free_port()
    command = shlex.join([sys.executable, str(script), str(dump)])
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url, app={"command": command, "port": port})
    async with run_lp(settings) as lp:
        for _ in range(200):
            if dump.exists() and dump.stat().st_size:
                break
            await asyncio.sleep(0.05)
        env = json.loads(dump.read_text())
        assert lp.stack is not None
        # Issue 19, LOW 15: the reaper (started by this process, with these variables) holds none.
        from linkpronto.platform import _posix

        pid = _posix.reaper_pid()
        assert pid is not None
        reaper_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    reaper_names = {e.split(b"=", 1)[0].decode() for e in reaper_env if e}
    assert reaper_names <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}, reaper_names
    assert not any(b"secret-" in e or b"pw@" in e for e in reaper_env)
    for name in TUNNEL_CREDENTIALS:
        assert name not in env
    assert not any(v.startswith("secret-") for v in env.values())
    assert "LINKPRONTO_SERVER_DATABASE_URL_UNUSED" not in env
    assert env["USER_OWN_SETTING"] == "kept"
    # Its documented variables: the LiveKit pair in use (not the orchestrator's inherited one).
    assert env["LIVEKIT_API_SECRET"] == TEST_SECRET
    assert env["LINKPRONTO_ADMIN_TOKEN"] and env["LINKPRONTO_ADMIN_URL"].startswith("http://127.0.0.1:")
    assert env["PORT"] == str(port)
