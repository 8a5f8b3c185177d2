"""The user's real setup under linkpronto: ``linkpronto up --app "npx next dev -p <port>"``.

A real Next.js 16 dev server (Pages Router, ``tests/fixtures/nextapp``, no ``allowedDevOrigins``)
supervised by the stack, the LiveKit test double, and a real ``ssh -R`` tunnel to a real sshd. The
tunnel's public address is opened in headless Chromium under a host name that is neither localhost nor
an IP (``clinic.example``, mapped to the loopback by Chromium's resolver rules), as a phone would open
an ngrok/cloudflared address. Shown: the page hydrates (a client-side click changes it), HMR's WebSocket
connects through the gateway, ``NEXT_PUBLIC_SITE_URL``/``NEXT_PUBLIC_LIVEKIT_URL`` baked into the page
are the tunnel's address, a consultation link made by linkpronto with the app's own link path opens the
app's page, which joins through linkpronto's public API on the same origin, and when the tunnel comes
back at another address ``next dev`` is restarted and its pages carry the new one.

The npm install is cached outside the repository exactly as ``tests/gateway/test_nextjs.py`` does
(its ``prepare_app``); two pages are added to that copy for this test (``prepare_app`` resets
``pages/`` from the fixture on every call).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer
from gateway.test_nextjs import CHROMIUM, CHROMIUM_ARGS, NPM, NPX, prepare_app
from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from helpers.tiers import require
from test_app_supervision import _children_before_the_test, assert_no_children_left  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.slow

LINK_PATH = "/consultations/client/{token}"

# What the user's app does with linkpronto: public URLs from the env (baked in by `next dev`), and the
# patient's page at their own route, asking linkpronto's public API on the same origin.
SITE_PAGE = """
export default function Site() {
  return (
    <main>
      <p id="site">{process.env.NEXT_PUBLIC_SITE_URL}</p>
      <p id="livekit">{process.env.NEXT_PUBLIC_LIVEKIT_URL}</p>
    </main>
  );
}
"""
CONSULTATION_PAGE = """
import { useEffect, useState } from "react";
import { useRouter } from "next/router";

export default function Consultation() {
  const router = useRouter();
  const [state, setState] = useState("waiting");
  useEffect(() => {
    if (!router.isReady) return;
    (async () => {
      const cfg = await (await fetch("/_linkpronto/api/runtime-config")).json();
      const res = await fetch("/_linkpronto/api/join", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token: router.query.token, display_name: "Paciente" }),
      });
      const body = await res.json();
      setState(res.ok ? `joined ${body.room} at ${body.livekit_url} for ${cfg.site_url}` : `error ${res.status}`);
    })();
  }, [router.isReady, router.query.token]);
  return (
    <main>
      <h1 id="title">Consulta</h1>
      <p id="join">{state}</p>
    </main>
  );
}
"""


def prepare() -> Path:
    app = prepare_app()
    (app / "pages" / "site.js").write_text(SITE_PAGE)
    route = app / "pages" / "consultations" / "client"
    route.mkdir(parents=True, exist_ok=True)
    (route / "[token].js").write_text(CONSULTATION_PAGE)
    return app


async def test_next_dev_under_the_stack_hydrates_and_hot_reloads_through_the_tunnel(
    tmp_path: Path,
    livekit_double: RunningDouble,
    sshd: SshServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(NPM is not None and NPX is not None, "node and npm")
    require(CHROMIUM.is_file(), "/usr/bin/chromium")
    from playwright.async_api import async_playwright

    app_dir = prepare()
    port = free_port()
    # `linkpronto up` runs in the project's folder, as the user does; the app inherits it.
    monkeypatch.chdir(app_dir)
    monkeypatch.setenv("NEXT_TELEMETRY_DISABLED", "1")
    settings = settings_for(
        tmp_path / "data",
        livekit_url=livekit_double.url,
        tunnel={
            "provider": "ssh",
            "ssh_target": sshd.target,
            "ssh_remote_port": 0,
            "ssh_options": sshd.client_options(),
        },
        app={"command": f"npx next dev -p {port}", "port": port, "link_path": LINK_PATH},
    )
    async with run_lp(settings) as lp:
        # next dev compiles on first request: the ladder retries until `/` and the link route answer.
        doc = await lp.wait_state("ready", timeout=150)
        app_status = doc["components"]["app"]
        assert app_status["state"] == "ready" and app_status["pid"]
        public_url: str = doc["public_url"]
        assert public_url.startswith("http://127.0.0.1:")
        browser_url = public_url.replace("127.0.0.1", "clinic.example")  # a tunnel-like host name
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana"})
        assert res.status_code == 201, res.text
        link = res.json()
        assert link["url"].startswith(public_url + "/consultations/client/")

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                sockets: list[Any] = []
                frames: list[str] = []
                errors: list[str] = []

                def on_ws(ws: Any) -> None:
                    sockets.append(ws.url)
                    ws.on("framereceived", lambda payload: frames.append(str(payload)[:200]))
                    ws.on("socketerror", lambda error: errors.append(str(error)))

                page.on("websocket", on_ws)
                await page.goto(browser_url + "/", wait_until="domcontentloaded", timeout=90_000)
                await page.wait_for_selector("#hydration:text('hydrated')", timeout=60_000)
                assert await page.text_content("#title") == "Not clicked yet"
                await page.click("#btn")
                await page.wait_for_selector("#title:text('Clicked after hydration')", timeout=5_000)
                # HMR's WebSocket goes through the gateway under the tunnel's host and gets frames.
                deadline = time.monotonic() + 30
                while not frames:
                    assert time.monotonic() < deadline, f"no HMR frame; sockets: {sockets}, errors: {errors}"
                    await page.wait_for_timeout(50)
                hmr = [u for u in sockets if "/_next/" in u and "hmr" in u]
                assert hmr and hmr[0].startswith(browser_url.replace("http://", "ws://")), sockets
                assert not errors

                # The env linkpronto gave next dev is baked into the page: the tunnel's address.
                await page.goto(browser_url + "/site", wait_until="domcontentloaded", timeout=90_000)
                await page.wait_for_selector("#site", timeout=30_000)
                assert await page.text_content("#site") == public_url
                assert await page.text_content("#livekit") == "ws://" + public_url.removeprefix("http://") + "/_linkpronto/livekit"

                # The link linkpronto issued opens the app's own page, which joins on the same origin.
                patient_url = link["url"].replace("127.0.0.1", "clinic.example")
                await page.goto(patient_url, wait_until="domcontentloaded", timeout=90_000)
                await page.wait_for_selector("#join:text('joined')", timeout=60_000)
                joined = await page.text_content("#join")
                assert joined == (
                    f"joined {link['room']} at ws://{public_url.removeprefix('http://')}/_linkpronto/livekit for {public_url}"
                )
                log = "\n".join(lp.stack.app.log_tail())
                assert "Blocked cross-origin" not in log, log
                assert lp.secrets.admin_token not in log

                # The tunnel comes back at another address: linkpronto restarts next dev with it, so
                # the NEXT_PUBLIC_* values baked into the page follow without anyone editing .env.
                first_pid = app_status["pid"]
                sshd.stop()
                await lp.wait_state("degraded", timeout=20)
                sshd.start()
                deadline = time.monotonic() + 120
                while True:
                    doc = (await lp.admin.get("/api/status")).json()
                    if doc["state"] == "ready" and doc["public_url"] not in (None, public_url):
                        break
                    assert time.monotonic() < deadline, f"not ready at a new address: {doc}"
                    await page.wait_for_timeout(100)
                new_url: str = doc["public_url"]
                assert doc["components"]["app"]["pid"] != first_pid
                await page.goto(new_url.replace("127.0.0.1", "clinic.example") + "/site",
                                wait_until="domcontentloaded", timeout=90_000)
                await page.wait_for_selector("#site", timeout=30_000)
                assert await page.text_content("#site") == new_url
                assert await page.text_content("#livekit") == "ws://" + new_url.removeprefix("http://") + "/_linkpronto/livekit"
            finally:
                await browser.close()
    assert_no_children_left(sshd.pid, livekit_double.process.pid)
