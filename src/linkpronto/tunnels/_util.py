"""Small helpers shared by the tunnel providers (no provider logic here)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from linkpronto.aio import wait_set
from linkpronto.schema import PartState
from linkpronto.supervise import ManagedProcess
from linkpronto.supervise.spec import RestartPolicy
from linkpronto.tunnels.base import TunnelCallback, TunnelProvider

REDACTED = "**********"

#: How every tunnel process (ssh, cloudflared, the ngrok agent) is restarted: for as long as it takes,
#: with back-off capped at 30 s — a tunnel that drops because the network is down must come back by
#: itself. What cannot recover (a refused token, a key ssh rejects) is recognised from the agent's
#: output when it opens and fails at once instead.
TUNNEL_RESTART = RestartPolicy(
    enabled=True,
    backoff_initial_s=0.5,
    backoff_factor=2.0,
    backoff_max_s=30.0,
    crash_loop_failures=1_000_000,
    crash_loop_window_s=60.0,
    reset_after_ready_s=30.0,
)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``**********``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


async def get_json(client: httpx.AsyncClient, url: str) -> tuple[int, Any]:
    """``(status, parsed JSON or None)``; transport errors propagate as ``httpx.HTTPError``."""
    response = await client.get(url)
    try:
        data: Any = response.json()
    except ValueError:
        data = None
    return response.status_code, data


def url_port(addr: str) -> tuple[str, int | None]:
    """Host and port of an upstream address in any of the forms ngrok reports.

    ``"http://localhost:7801"`` → ``("localhost", 7801)``; ``"localhost:7801"`` → same;
    ``"7801"`` → ``("localhost", 7801)``; ``"https://x"`` → ``("x", 443)``.
    """
    addr = addr.strip()
    if addr.isdigit():
        return "localhost", int(addr)
    scheme = ""
    if "://" in addr:
        scheme, addr = addr.split("://", 1)
    hostport = addr.split("/", 1)[0]
    if hostport.startswith("["):  # [::1]:7801
        host, _, rest = hostport[1:].partition("]")
        port_s = rest.removeprefix(":")
    else:
        host, _, port_s = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    if port_s.isdigit():
        return host or "localhost", int(port_s)
    default = {"http": 80, "https": 443}.get(scheme.lower())
    return host or "localhost", default


LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", "[::1]", ""})


async def first_run(
    proc: ManagedProcess, timeout_s: float, extra: Callable[[], bool] | None = None
) -> PartState:
    """Wait for the first run of ``proc`` to become READY (and ``extra()`` true) or to end.

    Returns READY on success; BACKOFF, FAILED or STOPPED when the first run ended before that (the
    caller stops ``proc`` and reports why: at open time a failure is not retried, so ``auto`` can move
    on); STARTING when ``timeout_s`` passed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    changed = asyncio.Event()
    unsubscribe = proc.subscribe(lambda _status: changed.set())
    try:
        while True:
            state = proc.state
            if state in (PartState.READY, PartState.ADOPTED) and (extra is None or extra()):
                return PartState.READY
            if state in (PartState.RESTARTING, PartState.FAILED, PartState.STOPPED):
                return state
            remaining = deadline - loop.time()
            if remaining <= 0:
                return PartState.STARTING
            changed.clear()
            await wait_set(changed, min(remaining, 0.25))
    finally:
        unsubscribe()


class ProcessTunnel(TunnelProvider):
    """A provider that runs an agent under the supervisor and watches it over a local HTTP API.

    Holds the supervised process, its status subscription, the watcher task and the HTTP client,
    and tears them down in one place (``cloudflared`` and ``ngrok-agent``).
    """

    def __init__(self, local_port: int, on_event: TunnelCallback | None = None) -> None:
        super().__init__(local_port, on_event)
        self._proc: ManagedProcess | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    async def _close(self) -> None:
        await self._teardown()

    async def _teardown(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        proc, self._proc = self._proc, None
        if proc is not None:
            await proc.stop()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
