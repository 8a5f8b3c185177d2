"""The real linkpronto (both listeners, in-process ``serve``) for the synchronous Playwright tests.

It runs :func:`helpers.lp.run_lp` on its own event loop in a background thread, with the LiveKit test
double as an external LiveKit and a ``static`` tunnel pointing at the public listener — the same
set-up as the other end-to-end tests. The test thread drives it through the real admin API (bearer
token) with a synchronous httpx client; nothing in the server is faked or patched.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from helpers.lp import LP, run_lp, settings_for


class RealServer:
    def __init__(self, data_dir: Path, livekit_url: str, **sections: dict[str, Any]) -> None:
        self.settings = settings_for(data_dir, livekit_url=livekit_url, **sections)
        self._lp: LP | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failed: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="linkpronto-real", daemon=True)
        self.api: httpx.Client | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with run_lp(self.settings) as lp:
                self._lp = lp
                self._started.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread by start()
            self._failed = exc
        finally:
            self._started.set()

    def start(self) -> RealServer:
        self._thread.start()
        if not self._started.wait(30) or self._lp is None:
            raise RuntimeError(f"linkpronto did not start: {self._failed!r}")
        self.api = httpx.Client(base_url=self.admin_url, timeout=30,
                                headers={"Authorization": f"Bearer {self._lp.secrets.admin_token}"})
        return self

    def stop(self) -> None:
        if self.api is not None:
            self.api.close()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    # -- addresses ------------------------------------------------------------------------------------
    @property
    def lp(self) -> LP:
        assert self._lp is not None
        return self._lp

    @property
    def admin_url(self) -> str:
        return self.lp.running.admin_url

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.server.public_port}"

    @property
    def livekit_url(self) -> str:
        """What the browser is given: ``ws://<public>/_linkpronto/livekit``."""
        return self.public_url.replace("http", "ws", 1) + "/_linkpronto/livekit"

    def open_admin(self, page: Any, path: str = "/") -> None:
        """Open an admin page (dashboard, call page) in ``page`` the way a person does: through a
        one-time dashboard URL when the server hands them out (``POST /api/dashboard-login``, which
        sets the session cookie), then ``path``."""
        login = self.client().post("/api/dashboard-login")
        if login.status_code == 200 and path.startswith("/?"):
            page.goto(login.json()["url"] + "&" + path[2:])  # the server keeps the rest of the query
            return
        if login.status_code == 200:
            page.goto(login.json()["url"])
        page.goto(self.admin_url + path)

    # -- the admin API, for arranging and for checking what the pages did -------------------------------
    def client(self) -> httpx.Client:
        assert self.api is not None
        return self.api

    def wait_state(self, state: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            doc = self.client().get("/api/status").json()
            if doc["state"] == state:
                return doc
            time.sleep(0.05)
        raise AssertionError(f"state {state!r} not reached; last: {doc}")

    def create_link(self, **body: Any) -> dict[str, Any]:
        body.setdefault("professional_id", "dra-ana")
        res = self.client().post("/api/consultation-links", json=body)
        assert res.status_code == 201, res.text
        link: dict[str, Any] = res.json()
        return link

    def ready_link(self, **body: Any) -> dict[str, Any]:
        """A ready link made through the real API, with ``_url`` and ``_token`` as the fake's links have."""
        link = self.create_link(**body)
        return {**link, "_url": link["url"], "_token": token_of(link)}

    def link(self, link_id: str) -> dict[str, Any]:
        res = self.client().get(f"/api/consultation-links/{link_id}")
        assert res.status_code == 200, res.text
        doc: dict[str, Any] = res.json()
        return doc

    def links(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.client().get("/api/consultation-links").json()["items"]
        return items

    def wait_link(self, link_id: str, predicate: Any, timeout: float = 20, what: str = "") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        doc = self.link(link_id)
        while not predicate(doc):
            if time.monotonic() > deadline:
                raise AssertionError(f"link {link_id}: {what or 'condition'} not met; last: {doc}")
            time.sleep(0.05)
            doc = self.link(link_id)
        return doc

    def revoke(self, link_id: str) -> None:
        res = self.client().delete(f"/api/consultation-links/{link_id}")
        assert res.status_code == 200 and res.json()["status"] == "revoked", res.text

    def join(self, token: str) -> httpx.Response:
        return httpx.post(self.public_url + "/_linkpronto/api/join", json={"token": token}, timeout=30)


def token_of(link: dict[str, Any]) -> str:
    url: str = link["url"]
    return url.rsplit("/", 1)[1]
