"""The supervised app shares LiveKit with linkpronto (issue 9, points 2 and 3).

The app (a small Python server started as ``--app`` would start it) signs its own LiveKit tokens with
``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET`` from its environment, like a Next.js ``pages/api/livekit/token.js``.
Shown, for the generated pair (``local`` mode, livekit-server played by the double on PATH) and for the
configured pair (``external`` mode): the app's environment holds exactly the pair LiveKit runs with;
the professional's token signed by the app for the drop-in's ``room`` and the patient's
``/_linkpronto/api/join`` token both connect through the public ``/_linkpronto/livekit`` and the LiveKit
double shows both in the same room. (That inherited tunnel credentials are scrubbed from the app's
environment is the supervisor's, tested in tests/security.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from doubles.livekit_server import RunningDouble
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from helpers.net import free_port
from linkpronto.keys import load_or_create

pytestmark = [pytest.mark.slow, pytest.mark.only_on("posix")]  # a shell-script stand-in for livekit-server

DOUBLE = Path(__file__).parent / "doubles" / "livekit_server.py"

APP = r'''
import hashlib, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
import jwt

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def answer(self, doc):
        data = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/env":
            secret = os.environ.get("LIVEKIT_API_SECRET", "")
            return self.answer({k: os.environ.get(k) for k in (
                "LIVEKIT_API_KEY", "LIVEKIT_URL", "NEXT_PUBLIC_LIVEKIT_URL", "NEXT_PUBLIC_SITE_URL",
                "LINKPRONTO_PUBLIC_URL", "PORT", "LINKPRONTO_LIVEKIT_INTERNAL_URL")}
                | {"secret_sha256": hashlib.sha256(secret.encode()).hexdigest()})
        if url.path == "/api/livekit/token":  # the app's own token route, signed with the env keys
            q = parse_qs(url.query)
            now = int(time.time())
            claims = {"iss": os.environ["LIVEKIT_API_KEY"], "sub": q["identity"][0], "name": "Dra. Ana",
                      "nbf": now, "exp": now + 600,
                      "video": {"roomJoin": True, "room": q["room"][0], "canPublish": True, "canSubscribe": True}}
            token = jwt.encode(claims, os.environ["LIVEKIT_API_SECRET"], algorithm="HS256")
            return self.answer({"token": token, "url": os.environ["NEXT_PUBLIC_LIVEKIT_URL"]})
        return self.answer({"path": url.path})

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def double_state(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_double/state", timeout=5) as res:
        doc: dict[str, Any] = json.loads(res.read())
        return doc


@pytest.fixture
def fake_livekit_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``livekit-server`` on PATH is the double (it reads the keys from the config linkpronto writes)."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "livekit-server"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u "{DOUBLE}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return script


@pytest.mark.parametrize("mode", ["local", "external"])
async def test_app_signs_tokens_livekit_accepts_and_meets_the_patient_in_the_same_room(
    tmp_path: Path, livekit_double: RunningDouble, fake_livekit_on_path: Path,
    mode: str,
) -> None:
    script = tmp_path / "app.py"
    script.write_text(APP)
    app_port = free_port()
    app = {"command": shlex.join([sys.executable, str(script), str(app_port)]), "port": app_port}
    if mode == "local":
        lk_port = free_port()
        livekit: dict[str, Any] = {"mode": "local", "port": lk_port, "api_key": "", "api_secret": "",
                                   "node_ip": "127.0.0.1"}
        livekit_url = f"http://127.0.0.1:{lk_port}"
    else:
        livekit = {}
        livekit_url = livekit_double.url
    data = tmp_path / "data"
    settings = settings_for(data, livekit_url=livekit_double.url, livekit=livekit, app=app)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        public = lp.stack.public_url
        env = (await lp.public.get("/env")).json()
        if mode == "local":
            generated = load_or_create(data)
            key, secret = generated.livekit_api_key, generated.livekit_api_secret
            assert key != TEST_KEY
        else:
            key, secret = TEST_KEY, TEST_SECRET
        assert env["LIVEKIT_API_KEY"] == key and env["secret_sha256"] == sha256(secret)
        assert env["LINKPRONTO_LIVEKIT_INTERNAL_URL"] == livekit_url.replace("http://", "ws://")
        # LiveKit's convention (issue 16): LIVEKIT_URL is the URL clients connect to, the public one.
        assert env["LIVEKIT_URL"] == env["NEXT_PUBLIC_LIVEKIT_URL"] == (
            public.replace("http://", "ws://") + "/_linkpronto/livekit")
        assert env["NEXT_PUBLIC_SITE_URL"] == env["LINKPRONTO_PUBLIC_URL"] == public
        assert env["PORT"] == str(app_port)

        made = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"})
        assert made.status_code == 200, made.text
        room = made.json()["room"]
        token = made.json()["token"]
        pro = (await lp.public.get("/api/livekit/token", params={"room": room, "identity": "dra-ana"})).json()
        patient = (await lp.public.post("/_linkpronto/api/join", json={"token": token})).json()
        assert patient["room"] == room and patient["livekit_url"] == pro["url"]

        async with websockets.connect(pro["url"] + "/rtc?access_token=" + pro["token"]) as ws_pro, \
                websockets.connect(patient["livekit_url"] + "/rtc?access_token=" + patient["access_token"]) as ws_pat:
            await ws_pro.recv()  # the join response
            await ws_pat.recv()
            state = await asyncio.to_thread(double_state, livekit_url)
            here = [p for p in state["participants"] if p["room"] == room]
            assert sorted(p["identity"] for p in here) == sorted(["dra-ana", patient["identity"]]), state
            assert {r["path"] for r in state["ws_requests"][-2:]} == {"/rtc"}
