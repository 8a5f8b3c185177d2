"""The ``link_route`` rung checks what the patient needs (issue 9, points 7 and 8).

* linkpronto's own page: the page and every file it loads (livekit-client included) through the public
  URL; a copy of linkpronto without the livekit-client bundle is never ``ready`` (``ASSETS_MISSING`` + fix);
* the app's link route: 2xx for a probe link — an app that has no page there (404) is not ``ready``, even
  though its root answers 200;
* a dev server's first compile: an app whose link route takes longer than the steady-state check timeout
  to answer the first time (like ``next dev`` compiling a page) is warmed up as soon as its port opens
  and becomes ready without a failed verification round.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import LP, run_lp, settings_for
from helpers.net import free_port
from linkpronto import paths
from linkpronto.web import assets

pytestmark = pytest.mark.slow

APP = r'''
import sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, LINK_STATUS, FIRST_DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
compiled = threading.Event()
lock = threading.Lock()

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        status = 200
        if self.path.startswith("/consultations/client/"):
            with lock:  # the first request "compiles" the page; the others wait for it, as next dev does
                if not compiled.is_set():
                    print("compiling /consultations/client/[token] ...", flush=True)
                    time.sleep(FIRST_DELAY)
                    compiled.set()
            status = LINK_STATUS
        body = b"<html>consulta</html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
'''


def app_settings(tmp_path: Path, double: RunningDouble, link_status: int, first_delay: float) -> Any:
    script = tmp_path / "app.py"
    script.write_text(APP)
    port = free_port()
    command = shlex.join([sys.executable, str(script), str(port), str(link_status), str(first_delay)])
    return settings_for(tmp_path / "d", livekit_url=double.url,
                        app={"command": command, "port": port, "link_path": "/consultations/client/{token}"})


async def watch_checks(lp: LP, until: str, timeout: float) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Poll the status until ``until``; every failed check seen on the way, as (name, detail)."""
    failed: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = (await lp.admin.get("/api/status")).json()
        for c in doc["verification"]["checks"]:
            if c.get("required", True) and not c["ok"] and (c["name"], c["detail"]) not in failed:
                failed.append((c["name"], c["detail"]))
        if doc["state"] == until:
            return doc, failed
        await asyncio.sleep(0.05)
    raise AssertionError(f"state {until!r} not reached; last: {doc}; failed checks: {failed}")


def check(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in doc["verification"]["checks"] if c["name"] == name)


async def test_own_page_without_livekit_client_is_never_ready(
    tmp_path: Path, livekit_double: RunningDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This copy of linkpronto has its pages but not the livekit-client bundle (a pip install without it).
    static = tmp_path / "static"
    shutil.copytree(assets.STATIC_DIR, static, ignore=shutil.ignore_patterns("vendor"))
    monkeypatch.setattr(assets, "STATIC_DIR", static)
    monkeypatch.setattr(assets, "VENDOR_DIR", static / "vendor")
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url)
    async with run_lp(settings) as lp:
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "wait_s": 2})
        assert res.status_code == 202 and res.json()["url"] is None
        doc = (await lp.admin.get("/api/status?lang=en")).json()
        route = check(doc, "link_route")
        assert route["ok"] is False and route["detail"].startswith("ASSETS_MISSING")
        assert "livekit-client" in route["detail"] and "reinstall" in route["fix"].lower()
        assert doc["state"] != "ready"
        # Once the file is there (reinstalled), the same stack becomes ready by itself.
        (static / "vendor").mkdir()
        shutil.copyfile(Path(assets.__file__).parent / "static" / "vendor" / paths.LIVEKIT_BUNDLE,
                        static / "vendor" / paths.LIVEKIT_BUNDLE)
        monkeypatch.setattr(assets, "VENDOR_DIR", static / "vendor")
        lp.stack.poke()
        await lp.wait_state("ready", timeout=20)
        ok = check((await lp.admin.get("/api/status")).json(), "link_route")
        assert ok["ok"] is True and "livekit-client" in ok["detail"]


async def test_app_without_a_page_at_link_path_is_not_ready(tmp_path: Path, livekit_double: RunningDouble) -> None:
    async with run_lp(app_settings(tmp_path, livekit_double, link_status=404, first_delay=0)) as lp:
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "wait_s": 3})
        assert res.status_code == 202
        doc = (await lp.admin.get("/api/status?lang=en")).json()
        route = check(doc, "link_route")
        assert route["ok"] is False and "404" in route["detail"] and "probe link" in route["detail"]
        assert "--link-path" in route["fix"]
        assert check(doc, "app")["ok"] is True  # its root answers: only the link route is missing


async def test_first_compile_is_warmed_and_needs_no_failed_round(tmp_path: Path, livekit_double: RunningDouble) -> None:
    # The first answer of the link route takes 7 s (> the 5 s steady-state timeout).
    async with run_lp(app_settings(tmp_path, livekit_double, link_status=200, first_delay=7)) as lp:
        doc, failed = await watch_checks(lp, "ready", timeout=40)
        timeouts = [f for f in failed if "no answer within" in f[1]]
        assert not timeouts, failed
        assert check(doc, "link_route")["ok"] is True
        res = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "p", "waitS": 10})
        assert res.status_code == 200, res.text
        assert "/consultations/client/" in res.json()["consultationUrl"]
