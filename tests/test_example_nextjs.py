"""End to end with ``examples/nextjs-pages`` (issue 9): the seed's app, migrated, under
``linkpronto up --app "npx next dev -p <port>"`` behind a real ``ssh -R`` tunnel to a real sshd, with the
LiveKit test double as an external LiveKit, in headless Chromium.

Shown: the professional opens the app on localhost and clicks "Gerar link": the app's own
``/api/generate-consultation-token`` (migrated to linkpronto's drop-in) answers 200 with a verified link in
one go (no 202); the professional opens the room page; the patient opens the link through the public URL
on a 390×844 phone, the device check passes (fake camera) and they join through ``/_linkpronto/api/join``;
the professional joins with a token the app signed itself (``pages/api/livekit/token.js``, env keys) for
the drop-in's ``room``; the LiveKit double shows professional and patient in ONE room. The same "Gerar
link" request sent anonymously through the public URL is refused by the example's guard (even with a
forged ``X-Linkpronto-Via: local``).

The example's npm install is cached outside the repository (keyed on its package.json), as the other
Next.js tests do.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer
from gateway.test_nextjs import CHROMIUM, CHROMIUM_ARGS, NPM, NPX
from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from helpers.tiers import require

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nextjs-pages"
LINK_PATH = "/consultations/client/{token}"
PHONE = {"width": 390, "height": 844}
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def prepare_example() -> Path:
    """A copy of the example with its node_modules (``npm install`` only when package.json changed)."""
    root = os.environ.get("LINKPRONTO_TEST_CACHE")
    app = (Path(root) if root else Path.home() / ".cache" / "linkpronto-tests") / "example-nextjs-pages"
    app.mkdir(parents=True, exist_ok=True)
    stamp = hashlib.sha256((EXAMPLE / "package.json").read_bytes()).hexdigest()
    for item in EXAMPLE.iterdir():
        if item.name in ("node_modules", ".next"):
            continue
        target = app / item.name
        if item.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    stamp_file = app / ".installed-from"
    installed = (app / "node_modules" / "next" / "package.json").is_file()
    if not installed or not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
        assert NPM is not None
        subprocess.run([NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=app,
                       check=True, timeout=900, stdin=subprocess.DEVNULL)
        stamp_file.write_text(stamp)
    return app


async def in_one_room(double: RunningDouble, room: str, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    here: list[dict[str, Any]] = []
    while asyncio.get_running_loop().time() < deadline:
        state = await asyncio.to_thread(double.state)
        here = [p for p in state["participants"] if p["room"] == room]
        if len(here) >= count:
            return here
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {count} participants in {room}: {here}")


async def test_example_app_professional_and_patient_meet_through_the_tunnel(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(NPM is not None and NPX is not None, "node and npm")
    require(Path(CHROMIUM).is_file(), "/usr/bin/chromium")
    from playwright.async_api import async_playwright, expect

    app_dir = prepare_example()
    port = free_port()
    monkeypatch.chdir(app_dir)  # `linkpronto up` runs in the project's folder, as the user does
    monkeypatch.setenv("NEXT_TELEMETRY_DISABLED", "1")
    livekit_double.reset()
    settings = settings_for(
        tmp_path / "data",
        livekit_url=livekit_double.url,
        tunnel={"provider": "ssh", "ssh_target": sshd.target, "ssh_remote_port": 0,
                "ssh_options": sshd.client_options()},
        app={"command": f"npx next dev -p {port}", "port": port, "link_path": LINK_PATH},
    )
    async with run_lp(settings) as lp:
        doc = await lp.wait_state("ready", timeout=180)
        public_url: str = doc["public_url"]
        assert public_url.startswith("http://127.0.0.1:") and not public_url.endswith(f":{port}")

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *FAKE_MEDIA])
            try:
                # The professional, on this computer.
                pro = await (await browser.new_context(locale="pt-BR")).new_page()
                await pro.goto(f"http://localhost:{port}/", wait_until="domcontentloaded", timeout=120_000)
                await pro.wait_for_selector("main[data-hydrated='1']", timeout=60_000)  # the button is live
                async with pro.expect_response(lambda r: r.url.endswith("/api/generate-consultation-token"),
                                               timeout=60_000) as answer:
                    await pro.get_by_role("button", name="Gerar link").click()
                response = await answer.value
                assert response.status == 200, await response.text()  # verified in one go: no 202
                body = await response.json()
                assert body["success"] is True and body["room"] and body["consultationUrl"]
                await expect(pro.locator("#share")).to_have_attribute("data-state", "ready")
                url = await pro.locator("#consultation-url").input_value()
                assert url == body["consultationUrl"] and url.startswith(public_url + "/consultations/client/")
                await pro.click("#room-link")
                await expect(pro.locator("#room")).to_have_text(body["room"], timeout=60_000)
                await expect(pro.get_by_role("button", name="Entrar na sala")).to_be_enabled()  # hydrated

                # The patient, on a phone, through the public URL.
                phone_ctx = await browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")
                phone = await phone_ctx.new_page()
                await phone.goto(url, wait_until="domcontentloaded", timeout=120_000)
                await expect(phone.locator("#devices")).to_have_text("Câmera e microfone funcionando",
                                                                     timeout=60_000)
                await phone.wait_for_function("() => document.getElementById('preview').videoWidth > 0")
                await phone.fill("#name", "Maria")
                await phone.get_by_role("button", name="Entrar na consulta").click()
                await expect(phone.locator("#state")).to_contain_text(body["room"], timeout=30_000)
                # The professional joins the same room with the app's own token.
                await pro.get_by_role("button", name="Entrar na sala").click()
                here = await in_one_room(livekit_double, body["room"], 2, timeout=20)
                identities = sorted(p["identity"] for p in here)
                assert len(identities) == 2 and sum(i.startswith("pro-") for i in identities) == 1, here
                requests = (await asyncio.to_thread(livekit_double.state))["ws_requests"]
                assert all(r["path"] == "/rtc" or r["path"].startswith("/rtc/") for r in requests[-2:])
            finally:
                await browser.close()

        # The same request, anonymous, from the internet: refused by the app's guard.
        async with httpx.AsyncClient(timeout=60) as client:
            for headers in ({}, {"X-Linkpronto-Via": "local"}):
                res = await client.post(public_url + "/api/generate-consultation-token", headers=headers,
                                        json={"professionalId": "dra-ana"})
                assert res.status_code == 401, res.text
                assert res.json()["success"] is False and res.json()["error"]
            res = await client.get(public_url + "/api/livekit/token", params={"room": body["room"]})
            assert res.status_code == 401
