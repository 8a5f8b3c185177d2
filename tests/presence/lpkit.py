"""Shared steps of the presence tests: a linkpronto with the LiveKit double posting webhooks to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml

from doubles.livekit_server import RunningDouble, run_double
from helpers.lp import LP, TEST_KEY, TEST_SECRET, run_lp, settings_for
from helpers.net import free_port
from linkpronto.config import Settings
from linkpronto.events.webhook import ADMIN_PATH


@contextlib.contextmanager
def double_posting_to(tmp_path: Path, admin_port: int, departure_s: float = 0.5) -> Iterator[RunningDouble]:
    """The LiveKit double configured as LiveKit's docs say, with linkpronto's admin webhook URL."""
    conf = tmp_path / "livekit.yaml"
    conf.write_text(yaml.safe_dump({
        "keys": {TEST_KEY: TEST_SECRET},
        "webhook": {"api_key": TEST_KEY, "urls": [f"http://127.0.0.1:{admin_port}{ADMIN_PATH}"]},
        "room": {"departure_timeout": departure_s},
    }), encoding="utf-8")
    with run_double({}, extra_args=["--config", str(conf)]) as double:
        yield double


def lp_settings(tmp_path: Path, double_url: str, admin_port: int, **app: Any) -> Settings:
    return settings_for(tmp_path / "data", livekit_url=double_url, server={"admin_port": admin_port},
                        app=app or {})


@contextlib.asynccontextmanager
async def lp_with_double(tmp_path: Path, departure_s: float = 0.5, **app: Any) -> AsyncIterator[tuple[LP, RunningDouble]]:
    admin_port = free_port()
    with double_posting_to(tmp_path, admin_port, departure_s) as double:
        async with run_lp(lp_settings(tmp_path, double.url, admin_port, **app)) as lp:
            await lp.wait_state("ready", timeout=20)
            yield lp, double


async def ready_link(lp: LP) -> tuple[dict[str, Any], str]:
    res = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "dra-ana", "waitS": 20})
    assert res.status_code == 200, res.text
    body = res.json()
    link = (await lp.admin.get(f"/api/consultation-links/{body['linkId']}")).json()
    return link, body["token"]


class InRoom:
    """A participant connected to the double's signalling WebSocket (leaves when closed)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def leave(self) -> None:
        await self.ws.close()


async def connect(double: RunningDouble, access_token: str) -> InRoom:
    # lp_active=1: the double takes this participant as active (its media up), like a real browser
    ws = await websockets.connect(f"{double.ws_url}/rtc?access_token={access_token}&lp_active=1")
    await ws.recv()  # SignalResponse{join}
    return InRoom(ws)


async def patient_joins(lp: LP, double: RunningDouble, token: str, name: str) -> InRoom:
    grant = await lp.stack.store.call(lp.stack.links.join, token, name)
    return await connect(double, grant.access_token)


async def professional_joins(lp: LP, double: RunningDouble, link_id: str) -> InRoom:
    doc = (await lp.admin.post(f"/api/consultation-links/{link_id}/host-token")).json()
    return await connect(double, doc["access_token"])


async def wait_presence(lp: LP, link_id: str, presence: str | None, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    doc: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        doc = (await lp.admin.get(f"/api/consultation-links/{link_id}")).json()
        if doc["presence"] == presence:
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"presence {presence!r} not reached: {json.dumps(doc)[:1500]}")


class SseReader:
    """Reads the admin status stream and keeps its ``presence`` events."""

    def __init__(self, lp: LP) -> None:
        self.lp = lp
        self.presence: list[dict[str, Any]] = []
        self.statuses = 0
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(base_url=lp.running.admin_url, headers=dict(lp.admin.headers),
                                         timeout=None)
        self.connected = asyncio.Event()

    async def __aenter__(self) -> SseReader:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._client.aclose()

    async def _run(self) -> None:
        async with self._client.stream("GET", "/api/status/stream") as res:
            event = ""
            async for line in res.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    if event == "presence":
                        self.presence.append(json.loads(line[6:]))
                    else:
                        self.statuses += 1
                        self.connected.set()

    async def wait(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.presence) < n:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{n} presence events expected, got {self.presence}")
            await asyncio.sleep(0.02)
        return self.presence
