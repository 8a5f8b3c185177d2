"""Does LiveKit answer right now? Asked before a join counts a use (issue 11: a join during an
outage must not spend a one-use link). ``GET /`` → ``200`` within a short timeout; a success is
remembered for :data:`OK_TTL_S`, a failure for :data:`FAIL_TTL_S` (so an outage is not hammered,
and recovery is seen within a second)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from linkpronto.livekit.remote import http_base
from linkpronto.tls import client_context

OK_TTL_S = 2.0
FAIL_TTL_S = 0.5
TIMEOUT_S = 1.5


class LivekitReach:
    def __init__(self, url: Callable[[], str | None], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.clock = clock
        self._until = 0.0
        self._ok = False
        self._lock = asyncio.Lock()

    async def answers(self) -> bool:
        if self.clock() < self._until:
            return self._ok
        async with self._lock:
            if self.clock() < self._until:
                return self._ok
            self._ok = await self._ask()
            self._until = self.clock() + (OK_TTL_S if self._ok else FAIL_TTL_S)
            return self._ok

    def forget(self) -> None:
        self._until = 0.0

    async def _ask(self) -> bool:
        url = self.url()
        if not url:
            return False
        try:
            async with httpx.AsyncClient(trust_env=False, timeout=TIMEOUT_S, verify=client_context()) as client:
                res = await client.get(http_base(url).rstrip("/") + "/")
        except httpx.HTTPError:
            return False
        return res.status_code == 200
