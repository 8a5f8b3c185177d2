"""Run linkpronto's orchestrator in-process (real listeners on real ports) for tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from helpers.net import free_port
from linkpronto.config import Settings, defaults
from linkpronto.keys import InstanceSecrets, load_or_create
from linkpronto.orchestrator import Running, serve

TEST_KEY = "LPtestkey"
TEST_SECRET = "s3cr3t-" + "x" * 40  # ≥ 32 characters: accepted even when exposed


@dataclass
class LP:
    settings: Settings
    running: Running
    admin: httpx.AsyncClient
    public: httpx.AsyncClient
    secrets: InstanceSecrets
    stop_event: asyncio.Event

    @property
    def stack(self) -> Any:
        return self.running.stack

    async def wait_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        doc: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            doc = (await self.admin.get("/api/status")).json()
            if doc["state"] == state:
                return doc
            await asyncio.sleep(0.05)
        raise AssertionError(f"state {state!r} not reached; last status: {json.dumps(doc)[:2000]}")

    async def wait_link(self, link_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        doc: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            doc = (await self.admin.get(f"/api/consultation-links/{link_id}")).json()
            if doc["status"] == status:
                return doc
            await asyncio.sleep(0.05)
        raise AssertionError(f"link status {status!r} not reached; last: {doc}")


def settings_for(
    data_dir: Path,
    *,
    livekit_url: str,
    static_url: str | None = None,
    public_port: int | None = None,
    **sections: dict[str, Any],
) -> Settings:
    public_port = public_port or free_port()
    server = {"admin_port": free_port(), "public_port": public_port, "data_dir": data_dir}
    server.update(sections.pop("server", {}))
    livekit = {"mode": "external", "url": livekit_url, "api_key": TEST_KEY, "api_secret": TEST_SECRET}
    livekit.update(sections.pop("livekit", {}))
    tunnel = {"provider": "static", "static_url": static_url or f"http://127.0.0.1:{public_port}"}
    tunnel.update(sections.pop("tunnel", {}))
    verify = sections.pop("verify", {})  # the product's defaults unless a test says otherwise
    # ...except the page rung (a headless Chromium per run): on only where a test asks for it.
    verify.setdefault("page_browser", "off")
    return defaults(server=server, livekit=livekit, tunnel=tunnel, verify=verify, **sections)


@contextlib.asynccontextmanager
async def run_lp(settings: Settings) -> AsyncIterator[LP]:
    stop = asyncio.Event()
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(settings, on_started=started.set_result, stop_event=stop, handle_signals=False)
    )
    done, _ = await asyncio.wait([task, started], timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    running = started.result()
    secrets = load_or_create(settings.data_dir)
    admin = httpx.AsyncClient(
        base_url=running.admin_url,
        # Tests read the English rendering unless they ask for another (?lang=, Accept-Language).
        headers={"Authorization": f"Bearer {secrets.admin_token}", "Accept-Language": "en"},
        timeout=30,
    )
    public = httpx.AsyncClient(base_url=f"http://127.0.0.1:{running.public_port}", timeout=30)
    try:
        yield LP(settings, running, admin, public, secrets, stop)
    finally:
        stop.set()
        await admin.aclose()
        await public.aclose()
        await asyncio.wait_for(task, 20)


def cli_env(data_dir: Path, livekit_url: str, public_port: int, admin_port: int, **extra: str) -> dict[str, str]:
    """The environment for ``python -m linkpronto ...`` as a child process: the LiveKit double as an
    external LiveKit, a ``static`` tunnel pointing at the public listener itself, English messages."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINKPRONTO_", "LIVEKIT_", "NGROK_"))}
    env.update(
        {
            "LINKPRONTO_SERVER_DATA_DIR": str(data_dir),
            "LINKPRONTO_SERVER_ADMIN_PORT": str(admin_port),
            "LINKPRONTO_SERVER_PUBLIC_PORT": str(public_port),
            "LINKPRONTO_TUNNEL_PROVIDER": "static",
            "LINKPRONTO_TUNNEL_STATIC_URL": f"http://127.0.0.1:{public_port}",
            "LINKPRONTO_LIVEKIT_MODE": "external",
            "LIVEKIT_URL": livekit_url,
            "LIVEKIT_API_KEY": TEST_KEY,
            "LIVEKIT_API_SECRET": TEST_SECRET,
            "LINKPRONTO_LANG": "en",
            "LINKPRONTO_VERIFY_PAGE_BROWSER": "off",  # the page rung: only where a test asks for it
            "LINKPRONTO_VERIFY_MEDIA_INTERVAL": "0",  # the media rung: the double carries no media
            **extra,
        }
    )
    return env
