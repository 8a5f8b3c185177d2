"""End to end with ``examples/nextjs-legacy`` (issue 16 point 8): the seed's real app shape, migrated by
MIGRATION.diff, under ``linkpronto up --app "npx next dev -p <port> --webpack"`` behind a real ``ssh -R``
tunnel to a real sshd, LiveKit external, in headless Chromium.

Shown: the professional opens their page (room ``consulta-<slug>``) on this computer and clicks "Gerar
link": 200 with the professional's room and the app's own wording; the patient opens the link through the
public URL at 390×844 and joins via ``/_linkpronto/api/join``; the professional joins with the app's own
token route, whose ``wsUrl`` is the public LiveKit URL (not loopback); LiveKit lists both in ONE room.
The room listing is LiveKit's RoomService (livekit-api), so the LiveKit fixture is swappable: the test
double today, the real server later (``external_livekit``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from livekit import api

from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer
from gateway.test_nextjs import CHROMIUM, CHROMIUM_ARGS, NPM, NPX
from helpers.legacy_example import LEGACY, migrated_copy
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from helpers.net import free_port
from helpers.tiers import require

pytestmark = pytest.mark.slow

LINK_PATH = "/consultations/client/{token}"
PHONE = {"width": 390, "height": 844}
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@dataclass
class ExternalLivekit:
    url: str
    api_key: str
    api_secret: str

    async def identities_in(self, room: str) -> list[str]:
        async with api.LiveKitAPI(self.url, self.api_key, self.api_secret, failover=False) as lk:
            got = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        return [p.identity for p in got.participants]


@pytest.fixture
def external_livekit(livekit_double: RunningDouble) -> Iterator[ExternalLivekit]:
    """The LiveKit the app and linkpronto share. Swap here for the real livekit-server once it lands."""
    livekit_double.reset()
    yield ExternalLivekit(livekit_double.url, TEST_KEY, TEST_SECRET)


def prepare_example() -> Path:
    root = os.environ.get("LINKPRONTO_TEST_CACHE")
    app = (Path(root) if root else Path.home() / ".cache" / "linkpronto-tests") / "example-nextjs-legacy"
    modules = app / "node_modules"
    keep = app.parent / "example-nextjs-legacy-node_modules"
    if modules.is_dir():
        shutil.rmtree(keep, ignore_errors=True)
        modules.rename(keep)
    migrated_copy(app)
    if keep.is_dir():
        keep.rename(modules)
    stamp = hashlib.sha256((LEGACY / "package.json").read_bytes()).hexdigest()
    stamp_file = app.parent / "example-nextjs-legacy.installed-from"
    installed = (modules / "next" / "package.json").is_file()
    if not installed or not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
        assert NPM is not None
        subprocess.run([NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=app,
                       check=True, timeout=900, stdin=subprocess.DEVNULL)
        stamp_file.write_text(stamp)
    return app


async def test_legacy_app_professional_and_patient_meet_in_one_room_through_the_tunnel(
    tmp_path: Path, external_livekit: ExternalLivekit, sshd: SshServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    require(NPM is not None and NPX is not None, "node and npm")
    require(Path(CHROMIUM).is_file(), "/usr/bin/chromium")
    from playwright.async_api import async_playwright, expect

    app_dir = prepare_example()
    port = free_port()
    monkeypatch.chdir(app_dir)
    monkeypatch.setenv("NEXT_TELEMETRY_DISABLED", "1")
    settings = settings_for(
        tmp_path / "data",
        livekit_url=external_livekit.url,
        tunnel={"provider": "ssh", "ssh_target": sshd.target, "ssh_remote_port": 0,
                "ssh_options": sshd.client_options()},
        app={"command": f"npx next dev -p {port} --webpack", "port": port, "link_path": LINK_PATH},
    )
    async with run_lp(settings) as lp:
        doc = await lp.wait_state("ready", timeout=240)
        public_url: str = doc["public_url"]
        public_ws = public_url.replace("http://", "ws://").replace("https://", "wss://") + "/_linkpronto/livekit"

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *FAKE_MEDIA])
            try:
                pro = await (await browser.new_context(locale="pt-BR")).new_page()
                await pro.goto(f"http://127.0.0.1:{port}/professional/dra-ana", wait_until="domcontentloaded",
                               timeout=180_000)
                await pro.wait_for_selector("main[data-hydrated='1']", timeout=120_000)
                async with pro.expect_response(lambda r: r.url.endswith("/api/generate-consultation-token"),
                                               timeout=90_000) as answer:
                    await pro.get_by_role("button", name="Gerar link").click()
                response = await answer.value
                assert response.status == 200, await response.text()
                body = await response.json()
                assert body["success"] is True and body["room"] == "consulta-dra-ana", body
                url = body["consultationUrl"]
                assert url.startswith(public_url + "/consultations/client/")
                assert "_" not in body["token"] and "-" not in body["token"]
                assert body["shortMessage"] == f"Olá! Sua consulta com Dra. Ana Souza está pronta. Acesse: {url}"
                await expect(pro.locator("#consultation-url")).to_have_value(url)

                phone = await (await browser.new_context(viewport=PHONE, is_mobile=True, locale="pt-BR")).new_page()
                await phone.goto(url, wait_until="domcontentloaded", timeout=180_000)
                await expect(phone.get_by_role("button", name="Entrar na consulta")).to_be_enabled(timeout=120_000)
                await phone.fill("#name", "Maria")
                await phone.get_by_role("button", name="Entrar na consulta").click()
                # The join grant names the professional's room (what happens after is LiveKit's: the
                # double answers signalling only, so "connected" is not awaited; its room listing is).
                await expect(phone.locator("#room")).to_have_text("consulta-dra-ana", timeout=60_000)
                await expect(phone.locator("#professional")).to_contain_text("Dra. Ana Souza")

                async with pro.expect_response(lambda r: "/api/livekit/token" in r.url) as token_answer:
                    await pro.get_by_role("button", name="Entrar na sala").click()
                pro_token = await (await token_answer.value).json()
                assert pro_token["wsUrl"] == public_ws, pro_token  # a URL a phone can reach

                deadline = asyncio.get_running_loop().time() + 20
                while True:
                    here = await external_livekit.identities_in("consulta-dra-ana")
                    if len(here) >= 2 or asyncio.get_running_loop().time() > deadline:
                        break
                    await asyncio.sleep(0.2)
                assert len(here) == 2 and "pro-dra-ana" in here, here
            finally:
                await browser.close()

        # The app's token route is not open to the internet any more.
        async with httpx.AsyncClient(timeout=60) as client:
            res = await client.get(public_url + "/api/livekit/token", params={"room": "consulta-dra-ana"})
            assert res.status_code == 401, res.text
