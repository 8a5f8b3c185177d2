"""``linkpronto up``: one process, one event loop, two listeners and the stack.

Order matters and is the point: the public listener is serving before the tunnel opens (so the
tunnel never points at nothing — ngrok's ERR_NGROK_8012), LiveKit is ready before links are, and
nothing is ``ready`` until the verification ladder passed through the public address.
Signal handlers only set a flag; a second Ctrl+C forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from linkpronto import keys
from linkpronto.config import Settings
from linkpronto.errors import LinkprontoError, PortInUse
from linkpronto.i18n import Text
from linkpronto.links.store import LinkStore, sqlite_url
from linkpronto.stack import Stack

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the orchestrator owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


def public_bind_address(settings: Settings) -> str:
    if settings.server.public_bind:
        return settings.server.public_bind
    from linkpronto.tunnels import possible_facts

    # Every interface when the provider (or one ``auto`` may choose) has devices connect directly.
    return "0.0.0.0" if any(f.binds_lan for f in possible_facts(settings.tunnel.provider)) else "127.0.0.1"


def bind_socket(host: str, port: int, what: str) -> socket.socket:
    """Bind now, so a port conflict is reported before anything else starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise port_in_use(port, what) from exc
    # Accepted connections inherit this: without it, a response written as headers + body waits for
    # the client's delayed ACK (Nagle), ~40 ms per request on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def port_in_use(port: int, what: str) -> PortInUse:
    from linkpronto.platform import port_holder

    return PortInUse.held(port, f"linkpronto ({what})", port_holder(port), f"LINKPRONTO_SERVER_{what.upper()}_PORT")


@dataclass
class Running:
    """What ``up`` hands to the console while it runs."""

    stack: Stack
    admin_url: str
    public_port: int
    admin_token_path: str


async def serve(
    settings: Settings,
    *,
    on_started: Callable[[Running], None] | None = None,
    stop_event: asyncio.Event | None = None,
    handle_signals: bool = True,
    deployment: bool = False,
) -> int:
    """Run until a signal, ``POST /api/shutdown`` or ``stop_event``; returns the exit code.

    ``deployment`` (``linkpronto serve``): the secrets are the deployment's, shared through the
    store (:mod:`linkpronto.deployment`), so any instance behind one address serves any link.

    Everything acquired is registered on one exit stack, so any failure or stop releases it all
    in reverse order: signal handlers, the info file, the listeners, the proxies, the stack (and
    with it every child process), the store, the lock.
    """
    from linkpronto.platform import orchestrator_lock, write_orchestrator_info

    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = stop_event or asyncio.Event()
    async with contextlib.AsyncExitStack() as exits:
        exits.enter_context(orchestrator_lock(data_dir))
        admin_sock = exits.enter_context(
            contextlib.closing(bind_socket(settings.server.admin_bind, settings.server.admin_port, "admin"))
        )
        public_sock = exits.enter_context(
            contextlib.closing(
                bind_socket(public_bind_address(settings), settings.server.public_port, "public")
            )
        )
        admin_port: int = admin_sock.getsockname()[1]
        public_port: int = public_sock.getsockname()[1]
        admin_url = f"http://{_admin_host(settings.server.admin_bind)}:{admin_port}"
        store = LinkStore(settings.server.database_url.get_secret_value() or sqlite_url(data_dir))
        exits.callback(store.close)
        if deployment:
            from linkpronto.deployment import shared_secrets

            secrets_ = shared_secrets(store, settings)
        else:
            secrets_ = keys.load_or_create(data_dir)
        from linkpronto.links.retention import purge_periodically

        purger = asyncio.create_task(
            purge_periodically(
                store, retention_s=settings.links.retention, interval_s=settings.links.purge_interval
            ),
            name="retention-purge",
        )
        exits.push_async_callback(_cancel, purger)
        stack = Stack(settings, secrets_, store, admin_url=admin_url, install_allowed=settings.stack.install)
        exits.push_async_callback(_close_stack, stack)
        await stack.events.start()  # app callbacks (app.events_url): the durable outbox's deliverer
        exits.push_async_callback(stack.events.aclose)
        if settings.stack.mode == "always-on":
            # Children first: LiveKit and the tunnel boot while the web layer is imported and built.
            # Both sockets already listen, so early connections wait in the backlog instead of
            # failing (no ERR_NGROK_8012).
            await stack.start()
            await asyncio.sleep(0)
        admin_app, public_app, closers = _build_apps(settings, stack, admin_port, stop)
        for closer in closers:
            exits.push_async_callback(closer)
        servers = [
            _EmbeddedServer(uvicorn.Config(admin_app, ws="none", **_UVICORN)),
            # Request paths carry link tokens: no access log, ever.
            _EmbeddedServer(
                uvicorn.Config(
                    public_app, ws="websockets-sansio", server_header=False, date_header=False, **_UVICORN
                )
            ),
        ]
        tasks = [
            asyncio.create_task(servers[0].serve(sockets=[admin_sock]), name="admin-listener"),
            asyncio.create_task(servers[1].serve(sockets=[public_sock]), name="public-listener"),
        ]
        exits.push_async_callback(_stop_servers, servers, tasks)
        await _wait_started(servers, tasks)
        write_orchestrator_info(
            data_dir,
            {
                "pid": os.getpid(),
                "admin_url": admin_url,
                "public_port": public_port,
                "started_at": time.time(),
            },
        )
        exits.callback(_unlink_quietly, data_dir / "orchestrator.json")
        exits.callback(_install_signal_handlers(stop) if handle_signals else (lambda: None))
        if on_started is not None:
            on_started(Running(stack, admin_url, public_port, str(data_dir / "admin-token")))
        await stop.wait()
    return 0


_UVICORN: dict[str, Any] = {
    "log_level": "warning",
    "access_log": False,
    "lifespan": "off",
    "proxy_headers": False,  # forwarding headers are trusted per tunnel, in web.public
    "timeout_graceful_shutdown": 2,
}


def _build_apps(
    settings: Settings, stack: Stack, admin_port: int, stop: asyncio.Event
) -> tuple[Any, Any, list[Callable[[], Awaitable[None]]]]:
    from linkpronto.gateway.app_proxy import AppProxy
    from linkpronto.gateway.rtc import RtcProxy
    from linkpronto.web.admin import build_admin_app
    from linkpronto.web.public import PublicDeps, build_public_app

    rtc = RtcProxy(lambda: stack.livekit_local_url) if settings.livekit.mode != "cloud" else None
    has_app = bool(settings.app.command or settings.app.port)
    app_proxy = AppProxy(lambda: stack.app_url, lambda: stack.public_url) if has_app else None

    def trust_forwarded() -> bool:
        t = stack.tunnel
        return t is not None and t.facts.client_ip_header is not None

    async def request_stop() -> None:
        stop.set()

    public_app = build_public_app(PublicDeps(stack, rtc, app_proxy, trust_forwarded))
    admin_app = build_admin_app(stack, port_getter=lambda: admin_port, shutdown=request_stop)
    closers: list[Callable[[], Awaitable[None]]] = [p.aclose for p in (rtc, app_proxy) if p is not None]
    return admin_app, public_app, closers


async def _wait_started(servers: list[_EmbeddedServer], tasks: list[asyncio.Task[None]]) -> None:
    deadline = time.monotonic() + 10
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks) or time.monotonic() > deadline:
            raise LinkprontoError(
                Text("Os servidores HTTP não iniciaram.", "The HTTP listeners did not start."),
                code="LISTENER_FAILED",
            )
        await asyncio.sleep(0.01)


async def _stop_servers(servers: list[_EmbeddedServer], tasks: list[asyncio.Task[None]]) -> None:
    for s in servers:
        s.should_exit = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5)


def _admin_host(bind: str) -> str:
    """Where local clients reach the admin listener: loopback when it listens on every address."""
    if bind in ("", "0.0.0.0", "::", "127.0.0.1"):
        return "127.0.0.1"
    return f"[{bind}]" if ":" in bind else bind


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_stack(stack: Stack) -> None:
    try:
        await asyncio.wait_for(stack.aclose(), SHUTDOWN_GRACE_S)
    except TimeoutError:
        log.warning("stack did not stop within %.0f s", SHUTDOWN_GRACE_S)


def _unlink_quietly(path: Any) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _install_signal_handlers(stop: asyncio.Event) -> Callable[[], None]:
    """Ctrl+C / SIGTERM / console close set ``stop``; a second one exits at once."""
    loop = asyncio.get_running_loop()
    hits = {"n": 0}

    def handler(signum: int, frame: object) -> None:
        hits["n"] += 1
        if hits["n"] > 1:
            os._exit(130)
        loop.call_soon_threadsafe(stop.set)

    names = ["SIGINT", "SIGTERM", "SIGBREAK", "SIGHUP"]
    previous: list[tuple[int, Any]] = []
    for name in names:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        with contextlib.suppress(ValueError, OSError):
            previous.append((sig, signal.signal(sig, handler)))

    def restore() -> None:
        for sig, old in previous:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, old)

    return restore
