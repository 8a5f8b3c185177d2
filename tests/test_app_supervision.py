"""Supervising the user's app (issue 5, item 4) under the real stack.

Real processes only: linkpronto's orchestrator in-process (both listeners), the LiveKit test double,
a real ``sshd`` with ``ssh -R`` to remote port 0 (so a restarted sshd hands out a new public URL, like
a free ngrok address), and the user's app played by a small Python HTTP server started exactly as
``--app`` would: ``<python> <script> <port>``, with no shell.

What is shown: the stack is ``ready`` only once the app answers; every path that is not linkpronto's
reaches the app through the public listener (including the app's own link route), while
linkpronto's own ``/_linkpronto/*`` stays linkpronto's and admin-looking paths such as ``/api/status`` are
the app's (the admin API is on another socket); the app's
environment carries the public URL, the ``ws://`` LiveKit URL of the same origin and a working admin
URL/token; links use ``app.link_path``; a new public URL restarts the app with the new URL (or not, when
``restart_on_url_change`` is false); an app that exits at once ends in ``APP_CRASH_LOOP`` with its log
tail (secrets redacted); while the app is down links wait (202) and become ready by themselves once it
is back. No child process outlives ``run_lp``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer
from helpers.lp import LP, run_lp, settings_for
from helpers.net import free_port
from linkpronto import platform

LINK_PATH = "/consultations/client/{token}"

# The user's app: a threaded HTTP server on 127.0.0.1:<port>. A file named ``sick`` next to the script
# makes every answer 503 (an app that runs but is broken); an optional second argument delays the
# listening socket (an app that takes a while to boot).
APP_SOURCE = r'''
import hashlib, json, os, sys, time, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = int(sys.argv[1])
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
SICK = Path(__file__).with_name("sick")
TOKEN = os.environ.get("LINKPRONTO_ADMIN_TOKEN", "")


def admin(method, path, body=None):
    req = urllib.request.Request(
        os.environ["LINKPRONTO_ADMIN_URL"] + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if SICK.exists():
            return self.answer(503, {"served_by": "app", "sick": True})
        path = self.path.split("?", 1)[0]
        if path == "/env":
            return self.answer(200, {
                "served_by": "app",
                "pid": os.getpid(),
                "NEXT_PUBLIC_SITE_URL": os.environ.get("NEXT_PUBLIC_SITE_URL"),
                "NEXT_PUBLIC_LIVEKIT_URL": os.environ.get("NEXT_PUBLIC_LIVEKIT_URL"),
                "LINKPRONTO_ADMIN_URL": os.environ.get("LINKPRONTO_ADMIN_URL"),
                "LINKPRONTO_ADMIN_TOKEN_sha256": hashlib.sha256(TOKEN.encode()).hexdigest() if TOKEN else None,
                "PORT": os.environ.get("PORT"),
            })
        if path == "/admin-status":  # the app calls linkpronto's admin API with the token it was given
            status, doc = admin("GET", "/api/status")
            return self.answer(200, {"served_by": "app", "status": status,
                                     "state": doc["state"] if doc else None})
        if path == "/admin-no-token":
            req = urllib.request.Request(os.environ["LINKPRONTO_ADMIN_URL"] + "/api/status")
            try:
                with urllib.request.urlopen(req, timeout=20) as res:
                    code = res.status
            except urllib.error.HTTPError as exc:
                code = exc.code
            return self.answer(200, {"served_by": "app", "status": code})
        if path == "/make-link":  # the app's own "Gerar link" button
            status, doc = admin("POST", "/api/consultation-links", {"professional_id": "dra-ana", "wait_s": 10})
            return self.answer(200, {"served_by": "app", "status": status, "link": doc})
        return self.answer(200, {"served_by": "app", "path": path, "pid": os.getpid(),
                                 "host": self.headers.get("Host"),
                                 "via": self.headers.get_all("X-Linkpronto-Via")})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        return self.answer(200, {"served_by": "app", "method": "POST", "path": self.path,
                                 "via": self.headers.get_all("X-Linkpronto-Via")})


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
'''

# An app that cannot start: it prints a few lines (one of them holds the admin token, which must never
# reach a log tail) and exits with status 3 at once.
CRASH_SOURCE = r'''
import os, sys
print("booting clinic app", flush=True)
print("token is " + os.environ.get("LINKPRONTO_ADMIN_TOKEN", "?"), flush=True)
print("fatal: DATABASE_URL is not set", file=sys.stderr, flush=True)
sys.exit(3)
'''


# -- fixtures and helpers ---------------------------------------------------------------------------
def write_app(tmp_path: Path, source: str = APP_SOURCE, name: str = "clinic_app.py") -> Path:
    folder = tmp_path / "app"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(source)
    return script


def app_command(script: Path, port: int, *extra: str) -> str:
    """What a user types after ``--app``; linkpronto splits it into argv itself (never a shell)."""
    return shlex.join([sys.executable, str(script), str(port), *extra])


def stack_settings(
    tmp_path: Path,
    double: RunningDouble,
    sshd: SshServer,
    app: dict[str, Any],
) -> Any:
    tunnel = {
        "provider": "ssh",
        "ssh_target": sshd.target,
        "ssh_remote_port": 0,  # sshd picks a port, and another one after it restarts
        "ssh_options": sshd.client_options(),
    }
    return settings_for(tmp_path / "data", livekit_url=double.url, tunnel=tunnel, app=app)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def status(lp: LP) -> dict[str, Any]:
    res = await lp.admin.get("/api/status")
    assert res.status_code == 200, res.text
    doc: dict[str, Any] = res.json()
    return doc


async def wait_for(lp: LP, predicate: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
    """Poll ``/api/status`` until ``predicate(status)`` holds; every wait has a deadline."""
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = await status(lp)
        if predicate(doc):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not reached in {timeout:g} s; last status: {doc}")


@contextlib.asynccontextmanager
async def status_events(lp: LP) -> AsyncIterator[list[dict[str, Any]]]:
    """Every Status the SSE stream sends (one per change, in order) while the block runs."""
    events: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with lp.admin.stream("GET", "/api/status/stream") as res:
            async for line in res.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    subscribed.set()

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(subscribed.wait(), 5)  # the first event: the stream is subscribed
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def check(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in doc["verification"]["checks"] if c["name"] == name), None)


async def public_get(url: str, path: str) -> httpx.Response:
    """A request through the tunnel's public address (the sshd-side port of ``ssh -R``)."""
    async with httpx.AsyncClient(timeout=15) as client:
        return await client.get(url + path)


def _tree(pid: int | None) -> set[int]:
    if pid is None:
        return set()
    try:
        proc = psutil.Process(pid)
        return {pid, *(c.pid for c in proc.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _children_before_the_test() -> Iterator[None]:
    """Descendants alive before the test (session fixtures: PostgreSQL, Redis, the LiveKit double)."""
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in psutil.Process().children(recursive=True))
    yield
    _BEFORE.clear()


def assert_no_children_left(*keep: int | None, timeout: float = 3.0) -> None:
    """No descendant of this test process survives ``run_lp`` except the fixtures' own (sshd, the LiveKit
    double, servers started before the test) and the supervisor's reaper helper."""
    deadline = time.monotonic() + timeout
    left: list[str] = []
    while True:
        allowed = set().union(*(_tree(pid) for pid in keep)) | _tree(platform.reaper_pid()) | _BEFORE
        left = []
        for proc in psutil.Process().children(recursive=True):
            if proc.pid in allowed:
                continue
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue  # exited; only waiting to be collected
                left.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            except psutil.NoSuchProcess:
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"processes left behind: {left}"


# -- the tests ----------------------------------------------------------------------------------------
async def test_app_is_supervised_with_its_env_and_serves_every_path_that_is_not_linkprontos(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    port = free_port()
    script = write_app(tmp_path)
    settings = stack_settings(
        tmp_path, livekit_double, sshd,
        {"command": app_command(script, port, "0.6"), "port": port, "link_path": LINK_PATH},
    )
    async with run_lp(settings) as lp:
        # Never ready before the app answers: every status polled on the way is consistent with that.
        seen_app_starting = False
        deadline = time.monotonic() + 20
        doc = await status(lp)
        while doc["state"] != "ready":
            app = doc["components"].get("app")
            seen_app_starting = seen_app_starting or (app is not None and app["state"] == "starting")
            assert time.monotonic() < deadline, f"not ready in time: {doc}"
            await asyncio.sleep(0.03)
            doc = await status(lp)
        assert seen_app_starting, "the app's slow boot was never visible in the status"
        app = doc["components"]["app"]
        assert app["state"] == "ready" and isinstance(app["pid"], int)
        app_check = check(doc, "app")
        assert app_check is not None and app_check["ok"] is True
        public_url = doc["public_url"]
        assert public_url.startswith("http://127.0.0.1:") and public_url != f"http://127.0.0.1:{port}"

        # The app's environment (read through the tunnel): the current public URL, LiveKit on the same
        # origin over ws://, the admin URL and token (compared by hash: the token is never shown).
        env = (await public_get(public_url, "/env")).json()
        assert env["served_by"] == "app" and env["pid"] == app["pid"]
        assert env["NEXT_PUBLIC_SITE_URL"] == public_url
        assert env["NEXT_PUBLIC_LIVEKIT_URL"] == "ws://" + public_url.removeprefix("http://") + "/_linkpronto/livekit"
        assert env["NEXT_PUBLIC_LIVEKIT_URL"] == doc["livekit_url"]
        assert env["LINKPRONTO_ADMIN_URL"] == lp.running.admin_url
        assert env["LINKPRONTO_ADMIN_TOKEN_sha256"] == sha256(lp.secrets.admin_token)
        assert env["PORT"] == str(port)
        # The token works from inside the app against the admin API (and nothing works without it).
        assert (await public_get(public_url, "/admin-status")).json() == {
            "served_by": "app", "status": 200, "state": "ready",
        }
        assert (await public_get(public_url, "/admin-no-token")).json()["status"] == 401

        # Every path that is not linkpronto's reaches the app, any method — admin-looking and
        # LiveKit-looking ones included (the admin API is on another socket; LiveKit is under
        # /_linkpronto/livekit), marked as coming from the public side.
        for path in ("/", "/patients/42", "/_next/static/chunk.js", "/consultations", "/api/hello",
                     "/api/statuses", "/api/status", "/api/generate-consultation-token", "/healthz",
                     "/c/x", "/rtc/x", "/twirp/x", "/api/public/professional"):
            res = await lp.public.get(path, headers={"X-Linkpronto-Via": "local"})
            assert res.status_code == 200 and res.json()["path"] == path, (path, res.text)
            assert res.json()["via"] == ["public"], (path, res.text)
        res = await lp.public.post("/forms/intake", json={"name": "Ana"})
        assert res.json() == {"served_by": "app", "method": "POST", "path": "/forms/intake", "via": ["public"]}
        # linkpronto's own public routes stay linkpronto's.
        assert (await lp.public.get("/_linkpronto/healthz")).text == "ok"
        cfg = (await lp.public.get("/_linkpronto/api/runtime-config")).json()
        assert cfg == {"site_url": public_url, "livekit_url": env["NEXT_PUBLIC_LIVEKIT_URL"]}
        assert (await lp.public.post("/_linkpronto/api/join", json={"token": "x" * 32})).status_code == 404
        # The admin token means nothing on the public listener: the request is the app's to judge.
        res = await lp.public.post("/api/consultation-links", headers={
            "Authorization": f"Bearer {lp.secrets.admin_token}"})
        assert res.json()["served_by"] == "app" and res.json()["via"] == ["public"]

        # Links use the app's link path, and that path is the app's page (linkpronto does not serve it).
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana"})
        assert res.status_code == 201, res.text
        link = res.json()
        prefix = public_url + "/consultations/client/"
        assert link["status"] == "ready" and link["url"].startswith(prefix)
        token = link["url"].removeprefix(prefix)
        page = await public_get(public_url, f"/consultations/client/{token}")
        assert page.json() == {
            "served_by": "app", "path": f"/consultations/client/{token}", "pid": app["pid"],
            "host": f"localhost:{port}",  # the gateway shows the app its own local host
            "via": ["public"],
        }
        # ...while /_linkpronto/c/<token> is linkpronto's own patient page for the same link.
        own = await public_get(public_url, f"/_linkpronto/c/{token}")
        assert own.status_code == 200 and "served_by" not in own.text
        assert own.headers["referrer-policy"] == "no-referrer"
        join = await lp.public.post("/_linkpronto/api/join", json={"token": token})
        assert join.status_code == 200 and join.json()["livekit_url"] == env["NEXT_PUBLIC_LIVEKIT_URL"]

        # The app's own "Gerar link" (the drop-in flow): it asks linkpronto with its env token.
        made = (await public_get(public_url, "/make-link")).json()
        assert made["status"] == 201 and made["link"]["url"].startswith(prefix)
        assert made["link"]["status"] == "ready"
        app_pid = app["pid"]
    assert not psutil.pid_exists(app_pid) or psutil.Process(app_pid).status() == psutil.STATUS_ZOMBIE
    assert_no_children_left(sshd.pid, livekit_double.process.pid)


@pytest.mark.parametrize("restart", [True, False], ids=["restart_on_url_change", "keep_running"])
async def test_public_url_change_restarts_the_app_with_the_new_url(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer, restart: bool
) -> None:
    port = free_port()
    script = write_app(tmp_path)
    settings = stack_settings(
        tmp_path, livekit_double, sshd,
        {"command": app_command(script, port), "port": port, "link_path": LINK_PATH,
         "restart_on_url_change": restart},
    )
    async with run_lp(settings) as lp:
        first = await lp.wait_state("ready", timeout=20)
        first_url, first_pid = first["public_url"], first["components"]["app"]["pid"]
        env = (await lp.public.get("/env")).json()
        assert env["pid"] == first_pid and env["NEXT_PUBLIC_SITE_URL"] == first_url
        sent = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).json()
        assert sent["url"].startswith(first_url + "/consultations/client/")

        async with status_events(lp) as events:
            sshd.stop()  # the tunnel's server goes away ...
            await lp.wait_state("degraded", timeout=20)
            sshd.start()  # ... and comes back with another remote port: a new public URL
            second = await wait_for(
                lp, lambda d: d["state"] == "ready" and d["public_url"] not in (None, first_url),
                "ready at a new public URL", timeout=30,
            )
            second_url = second["public_url"]

            def ready_at_new_url() -> list[dict[str, Any]]:
                return [e for e in events if e["state"] == "ready" and e["public_url"] == second_url]

            deadline = time.monotonic() + 5  # the stream may deliver it a moment after /api/status
            while not ready_at_new_url():
                assert time.monotonic() < deadline, [(e["state"], e["public_url"]) for e in events]
                await asyncio.sleep(0.02)
        assert any(p["code"] == "TUNNEL_URL_CHANGED" for p in second["problems"])
        if restart:
            # Never ready at the new address while the app still ran with the old one in its env.
            assert all(e["components"]["app"]["pid"] != first_pid for e in ready_at_new_url()), [
                (e["state"], e["public_url"], e["components"].get("app")) for e in events]
        app = second["components"]["app"]
        env = (await public_get(second_url, "/env")).json()
        assert env["pid"] == app["pid"]
        if restart:
            # Ready means the restarted app, which was started with the NEW address in its env.
            assert app["pid"] != first_pid and not psutil.pid_exists(first_pid)
            assert app["restarts"] == 1  # a planned restart, shown as one
            assert env["NEXT_PUBLIC_SITE_URL"] == second_url
            assert env["NEXT_PUBLIC_LIVEKIT_URL"] == "ws://" + second_url.removeprefix("http://") + "/_linkpronto/livekit"
        else:
            assert app["pid"] == first_pid and app["restarts"] == 0
            assert env["NEXT_PUBLIC_SITE_URL"] == first_url  # baked in at start, as configured
        assert env["LINKPRONTO_ADMIN_TOKEN_sha256"] == sha256(lp.secrets.admin_token)
        # Either way the sent link follows the new address, is flagged, and its page is the app's.
        link = (await lp.admin.get(f"/api/consultation-links/{sent['id']}")).json()
        assert link["url"].startswith(second_url + "/consultations/client/")
        assert link["sent_with_old_address"] is True
        token = link["url"].rsplit("/", 1)[1]
        page = (await public_get(second_url, f"/consultations/client/{token}")).json()
        assert page["served_by"] == "app" and page["pid"] == app["pid"]
    assert_no_children_left(sshd.pid, livekit_double.process.pid)


async def test_app_that_exits_at_once_fails_the_stack_with_a_crash_loop_and_its_log(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    port = free_port()
    script = write_app(tmp_path, CRASH_SOURCE, "crashing_app.py")
    settings = stack_settings(
        tmp_path, livekit_double, sshd,
        {"command": app_command(script, port), "port": port, "link_path": LINK_PATH},
    )
    async with run_lp(settings) as lp:
        # RestartPolicy() defaults: 5 failures within 60 s, back-off 0.5 s doubling → about 8 s.
        doc = await lp.wait_state("failed", timeout=25)
        problem = next(p for p in doc["problems"] if p["code"] == "APP_CRASH_LOOP")
        assert "5" in problem["message"] and problem["fix"]
        assert "exited with code 3 before it was ready" in doc["components"]["app"]["detail"]
        tail = problem["detail"]
        assert "fatal: DATABASE_URL is not set" in tail and "booting clinic app" in tail
        assert lp.secrets.admin_token not in tail and "token is **********" in tail
        app = doc["components"]["app"]
        assert app["state"] == "failed" and app["restarts"] == 4
        # Links cannot be made: 503 with the code and a fix (never a 202 that would wait forever).
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})
        assert res.status_code == 503
        assert res.json()["error"]["code"] == "APP_CRASH_LOOP" and res.json()["error"]["fix"]
    assert_no_children_left(sshd.pid, livekit_double.process.pid)


async def test_while_the_app_is_down_links_wait_and_become_ready_when_it_is_back(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    port = free_port()
    script = write_app(tmp_path)
    sick = script.with_name("sick")
    settings = stack_settings(
        tmp_path, livekit_double, sshd,
        {"command": app_command(script, port), "port": port, "link_path": LINK_PATH},
    )
    async with run_lp(settings) as lp:
        ready = await lp.wait_state("ready", timeout=20)
        public_url, first_pid = ready["public_url"], ready["components"]["app"]["pid"]

        # The app dies; the supervisor restarts it, but it comes back broken (answers 503).
        sick.touch()
        os.kill(first_pid, signal.SIGKILL)
        doc = await wait_for(
            lp,
            lambda d: d["state"] == "degraded"
            and d["components"]["app"]["state"] == "ready"
            and d["components"]["app"]["pid"] != first_pid
            and (c := check(d, "app")) is not None and c["ok"] is False,
            "degraded with the app rung failing after the restart",
        )
        assert doc["components"]["app"]["restarts"] == 1
        rung = check(doc, "app")
        assert rung is not None and rung["detail"] == "HTTP 503" and rung["fix"]
        link_rung = check(doc, "link_route")
        assert link_rung is not None and link_rung["ok"] is False  # the link's page is the app's
        assert any(p["code"] == "APP_UNHEALTHY" and "503" in p["message"] for p in doc["problems"])
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "wait_s": 0.5})
        assert res.status_code == 202, res.text
        waiting = res.json()
        assert waiting["status"] == "preparing" and waiting["url"] is None
        assert res.headers["location"] == f"/api/consultation-links/{waiting['id']}"
        assert (await public_get(public_url, "/env")).status_code == 503

        # The app is healthy again: the stack and the waiting link become ready by themselves.
        sick.unlink()
        link = await lp.wait_link(waiting["id"], "ready", timeout=15)
        assert link["url"].startswith(public_url + "/consultations/client/")
        doc = await lp.wait_state("ready", timeout=10)
        rung = check(doc, "app")
        assert rung is not None and rung["ok"] is True and rung["detail"] == "HTTP 200"
        env = (await public_get(public_url, "/env")).json()
        assert env["pid"] == doc["components"]["app"]["pid"] != first_pid
    assert_no_children_left(sshd.pid, livekit_double.process.pid)


async def test_app_port_already_taken_fails_the_stack_naming_the_holder(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    """E.g. ``npm run dev`` still running from before: the app is not started twice; the holder is named."""
    port = free_port()
    script = write_app(tmp_path)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(port), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await client.get(f"http://127.0.0.1:{port}/")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the port holder did not start"
                    await asyncio.sleep(0.05)
        settings = stack_settings(
            tmp_path, livekit_double, sshd,
            {"command": app_command(script, port), "port": port, "link_path": LINK_PATH},
        )
        async with run_lp(settings) as lp:
            doc = await lp.wait_state("failed", timeout=20)
            problem = next(p for p in doc["problems"] if p["code"] == "PORT_IN_USE")
            assert str(port) in problem["message"] and str(holder.pid) in problem["message"]
            assert problem["fix"]
            assert doc["components"]["app"]["state"] == "failed"
            res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})
            assert res.status_code == 503 and res.json()["error"]["code"] == "PORT_IN_USE"
        assert holder.returncode is None  # someone else's process: left alone
    finally:
        holder.terminate()
        await holder.wait()
    assert_no_children_left(sshd.pid, livekit_double.process.pid)
