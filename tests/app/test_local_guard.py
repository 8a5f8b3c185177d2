"""Issue 16 point 7: "local" is decided by proof. The example's guard (examples/nextjs-pages/lib/auth.js,
run for real by node) takes a request as the professional's own only when the socket's peer is loopback
and it does not carry linkpronto's public marker; a request from another machine on the network — here
a network namespace of the test's own (veth pair, 198.18.77.0/30, names ``lpapp*``) — is refused even
without the header, and so is one with a wrong per-start secret; one carrying ``LINKPRONTO_LOCAL_SECRET`` in
``X-Linkpronto-Local`` (code on this computer that read the app's environment) is local. The public
gateway drops every client copy of that header. And ``up --app`` makes ``next dev`` listen on loopback (``-H 127.0.0.1``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.inproc import InProcessDouble
from helpers.net import free_port
from helpers.tiers import require
from linkpronto.app_part import loopback_dev_server

AUTH_JS = Path(__file__).resolve().parents[2] / "examples" / "nextjs-pages" / "lib" / "auth.js"
HOST, PEER = "198.18.77.1", "198.18.77.2"

SERVER = r'''
import http from "node:http";
import { requireProfessional } from "./auth.mjs";
const server = http.createServer(async (req, res) => {
  res.status = (code) => { res.statusCode = code; return res; };
  res.json = (doc) => { res.setHeader("Content-Type", "application/json"); res.end(JSON.stringify(doc)); };
  const professional = await requireProfessional(req, res);
  if (professional) res.status(200).json({ local: professional.id === null, peer: req.socket.remoteAddress });
});
server.listen(Number(process.argv[2]), "0.0.0.0", () => console.log("listening"));
'''


@pytest.mark.parametrize(("argv", "expected"), [
    (["npx", "next", "dev", "-p", "3001", "--webpack"], ["npx", "next", "dev", "-H", "127.0.0.1", "-p", "3001",
                                                         "--webpack"]),
    (["next", "dev"], ["next", "dev", "-H", "127.0.0.1"]),
    (["node_modules/.bin/next", "dev", "-p", "1"], ["node_modules/.bin/next", "dev", "-H", "127.0.0.1", "-p", "1"]),
    (["npx.cmd", "next.cmd", "dev"], ["npx.cmd", "next.cmd", "dev", "-H", "127.0.0.1"]),
    (["npx", "next", "dev", "-H", "0.0.0.0"], ["npx", "next", "dev", "-H", "0.0.0.0"]),
    (["npx", "next", "dev", "--hostname=::1"], ["npx", "next", "dev", "--hostname=::1"]),
    (["npx", "next", "start"], ["npx", "next", "start"]),
    (["npm", "run", "dev"], ["npm", "run", "dev"]),
    ([sys.executable, "app.py", "dev"], [sys.executable, "app.py", "dev"]),
])
def test_next_dev_listens_on_loopback(argv: list[str], expected: list[str]) -> None:
    assert loopback_dev_server(argv) == expected


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def peer_namespace() -> Iterator[str]:
    """A namespace ``lpapp<pid>`` joined to this one by a veth pair: another machine on the network."""
    require(sys.platform == "linux" and shutil.which("ip") is not None and os.geteuid() == 0,
            "Linux, iproute2 and root (network namespaces)")
    ns = f"lpapp{os.getpid() % 100000}"
    host_if, peer_if = f"{ns}h"[:15], f"{ns}n"[:15]
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)  # a leftover of a killed run
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", ns)
        _ip("addr", "add", f"{HOST}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("addr", "add", f"{PEER}/30", "dev", peer_if, netns=ns)
        _ip("link", "set", peer_if, "up", netns=ns)
        _ip("link", "set", "lo", "up", netns=ns)
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _get(url: str, headers: dict[str, str] | None = None, netns: str | None = None) -> tuple[int, dict[str, object]]:
    code = (
        "import json,sys,urllib.request,urllib.error\n"
        "req=urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))\n"
        "try:\n r=urllib.request.urlopen(req, timeout=10); print(r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e: print(e.code, e.read().decode())\n"
    )
    cmd = [sys.executable, "-c", code, url, json.dumps(headers or {})]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    status, _, body = out.partition(" ")
    return int(status), json.loads(body)


@pytest.mark.slow
def test_a_request_from_another_machine_is_not_the_professionals(tmp_path: Path, peer_namespace: str) -> None:
    node = shutil.which("node")
    require(node is not None, "node")
    assert node is not None
    (tmp_path / "auth.mjs").write_text(AUTH_JS.read_text())  # the example's guard, unchanged
    (tmp_path / "server.mjs").write_text(SERVER)
    port = free_port()
    secret = "s3cretmadeatstart"
    proc = subprocess.Popen([node, "server.mjs", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "LINKPRONTO_LOCAL_SECRET": secret})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        # On this computer, straight to the dev server: the professional's own.
        status, body = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and body["local"] is True, body
        # Through the gateway (loopback peer, with the public marker): not local.
        status, body = _get(f"http://127.0.0.1:{port}/", {"X-Linkpronto-Via": "public"})
        assert status == 401, body
        # Another machine on the network, no header at all: not local (before: taken as local).
        status, body = _get(f"http://{HOST}:{port}/", netns=peer_namespace)
        assert status == 401 and body["code"] == "UNAUTHORIZED", body
        # The same machine with a wrong or empty per-start secret: not local either.
        for wrong in ("s3cretmadeatstarT", "", secret + "x"):
            status, body = _get(f"http://{HOST}:{port}/", {"X-Linkpronto-Local": wrong}, netns=peer_namespace)
            assert status == 401, (wrong, body)
        # Code on this computer that read the app's environment (LINKPRONTO_LOCAL_SECRET), arriving from a
        # non-loopback address (a container, WSL2, a local proxy): the professional's own, by proof.
        status, body = _get(f"http://{HOST}:{port}/", {"X-Linkpronto-Local": secret}, netns=peer_namespace)
        assert status == 200 and body["local"] is True, body
        # The public marker wins over the secret (the gateway drops client copies anyway).
        status, body = _get(f"http://127.0.0.1:{port}/", {"X-Linkpronto-Local": secret, "X-Linkpronto-Via": "public"})
        assert status == 401, body
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_local_secret_is_in_the_apps_environment_and_never_forwarded_from_the_public_side() -> None:
    from linkpronto.app_env import app_environment
    from linkpronto.gateway._headers import parse_upstream
    from linkpronto.gateway.app_proxy import LOCAL_HEADER, VIA_HEADER, _upstream_headers

    env = app_environment(public_url="https://x.example", livekit_browser_url=None, livekit_server_url=None,
                          api_key="k", api_secret="s", admin_url="http://127.0.0.1:1", admin_token="t", port=3001,
                          local_secret="abc")
    assert env["LINKPRONTO_LOCAL_SECRET"] == "abc"
    raw = [(b"host", b"x.example"), (b"x-linkpronto-local", b"abc"), (b"X-Linkpronto-Local".lower(), b"abc2"),
           (b"accept", b"*/*")]
    out = _upstream_headers(raw, parse_upstream("http://127.0.0.1:3001"), False, [])
    assert all(name != LOCAL_HEADER for name, _ in out), out
    assert (VIA_HEADER, b"public") in out and (b"accept", b"*/*") in out


async def test_each_start_hands_the_app_a_new_local_secret(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    from helpers.lp import run_lp, settings_for

    seen = []
    for _ in range(2):  # two starts of linkpronto on the same data folder
        async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)) as lp:
            stack = lp.stack
            env = stack._app_environment(stack.settings.app, stack._app_context())
            assert len(env["LINKPRONTO_LOCAL_SECRET"]) >= 32
            seen.append(env["LINKPRONTO_LOCAL_SECRET"])
    assert seen[0] != seen[1]  # per start, never stored
    assert not any(seen[0] in p.read_text(errors="replace") for p in (tmp_path / "d").rglob("*") if p.is_file())
