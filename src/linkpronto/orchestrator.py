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

from linkpronto import keys, paths
from linkpronto.config import Settings
from linkpronto.errors import ListenerFailed, PortInUse
from linkpronto.links.health import StoreHealth, open_store
from linkpronto.links.store import sqlite_url
from linkpronto.stack import Stack
from linkpronto.web.bounded import (
    RATE_LIMITED_LOGGERS,
    BodyLimit,
    EdgeLimits,
    RepeatFilter,
    bounded_protocol,
    own_body_limit,
)
from linkpronto.web.session import DashboardSessions

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 10.0
#: Admin connections at once (the dashboard, its event stream, the app's server, the CLI).
ADMIN_MAX_CONNECTIONS = 64
#: Per listener, connections past its cap kept for linkpronto's own routes (public: join, page,
#: device check…; admin: everything but the unauthenticated LiveKit webhook).
RESERVED_CONNECTIONS = 16
#: Descriptors kept back from the public listener's cap: the admin listener's whole budget and its
#: reserve, the public reserve and the public connections waiting for their head over the budget
#: (web.bounded: ``reserve`` of them at most), and 48 for children's pipes, the database, log files,
#: the tunnel and LiveKit clients (about 40 measured at rest). Accepts are paced (web.bounded.PacedSocket),
#: so no crowd takes descriptors before this budget applies.
FD_RESERVE = ADMIN_MAX_CONNECTIONS + 3 * RESERVED_CONNECTIONS + 48
#: A public connection can hold two descriptors (a proxied WebSocket: the client and the upstream).
FDS_PER_PUBLIC_CONNECTION = 2
PUBLIC_MAX_CONNECTIONS = 4096
FD_LIMIT_TARGET = FD_RESERVE + FDS_PER_PUBLIC_CONNECTION * PUBLIC_MAX_CONNECTIONS


def admin_reserved_for(path: str) -> bool:
    """The admin listener's reserve: every caller but the unauthenticated LiveKit webhook."""
    from linkpronto.events.webhook import ADMIN_PATH

    return path != ADMIN_PATH


def public_connection_cap(fd_limit: int | None) -> int:
    """Concurrent public connections allowed so that, whatever the public side does, the admin side
    still has descriptors to accept with (the public crowd can never exhaust the process)."""
    if fd_limit is None:
        return PUBLIC_MAX_CONNECTIONS
    return max(8, min(PUBLIC_MAX_CONNECTIONS, (fd_limit - FD_RESERVE) // FDS_PER_PUBLIC_CONNECTION))


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the orchestrator owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    def request_exit(self) -> None:
        """``should_exit``, noticed at once (uvicorn itself looks every 100 ms). From any thread."""
        self.should_exit = True
        wake, loop = getattr(self, "_wake", None), getattr(self, "_loop", None)
        if wake is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        # uvicorn's loop (a tick every 100 ms: the Date header, limits, should_exit), but a stop
        # request ends the wait at once: every `down` and every test's teardown was up to 0.1 s slower.
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):  # not wait_for: it can swallow a cancel on 3.11
                    await self._wake.wait()
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown, without its two waits on a clock: a fixed 0.1 s pause after asking the
        # connections to close, then a look every 0.1 s (every `down`, restart and test teardown paid
        # them with nobody connected). Here a look every 5 ms, and a connection accepted while closing
        # (the ladder's own requests race the stop) is asked to close too: uvicorn asked only those
        # there at first, and an idle keep-alive one then held the stop for the whole grace period.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        asked: set[object] = set()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while self.server_state.connections and not self.force_exit:
                    for connection in list(self.server_state.connections):
                        if connection not in asked:
                            asked.add(connection)
                            connection.shutdown()
                    await asyncio.sleep(0.005)
                await self._wait_tasks_to_complete()
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()


def public_bind_address(settings: Settings) -> str:
    """Loopback unless the provider is ``lan`` (devices connect directly). ``auto`` starts on loopback
    and, only if it ends up choosing ``lan``, adds the LAN address (:func:`_lan_listener`)."""
    if settings.server.public_bind:
        return settings.server.public_bind
    return "0.0.0.0" if settings.tunnel.provider == "lan" else "127.0.0.1"


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
    from linkpronto.web.bounded import paced

    return paced(sock)  # accepts paced per loop iteration: the connection budget applies before FDs run out


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
    #: The one-time dashboard URL (``/?token=…``) that ``up`` prints and opens.
    dashboard_url: str = ""


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
    from linkpronto.platform import (
        fd_limit,
        make_private_tree,
        orchestrator_lock,
        raise_fd_limit,
        write_orchestrator_info,
    )

    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    make_private_tree(data_dir)
    raise_fd_limit(FD_LIMIT_TARGET)
    stop = stop_event or asyncio.Event()
    async with contextlib.AsyncExitStack() as exits:
        exits.enter_context(orchestrator_lock(data_dir))
        exits.callback(_quiet_repeated_logs())
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
        store = open_store(settings.server.database_url.get_secret_value() or sqlite_url(data_dir), data_dir)
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
        health = StoreHealth(store, data_dir, on_change=stack.poke)
        stack.storage = stack.links.storage = health
        watcher = asyncio.create_task(health.watch(), name="storage-health")
        exits.push_async_callback(_cancel, watcher)
        await stack.links.revocations.load()  # revocations still in force, should the store fail later
        await stack.events.start()  # app callbacks (app.events_url): the durable outbox's deliverer
        exits.push_async_callback(stack.events.aclose)
        if settings.stack.mode == "always-on":
            # Children first: LiveKit and the tunnel boot while the web layer is imported and built.
            # Both sockets already listen, so early connections wait in the backlog instead of
            # failing (no ERR_NGROK_8012).
            await stack.start()
            await asyncio.sleep(0)
        sessions = DashboardSessions()
        admin_app, public_app, closers = _build_apps(settings, stack, admin_port, stop, sessions)
        for closer in closers:
            exits.push_async_callback(closer)
        admin_http = bounded_protocol(EdgeLimits(
            max_connections=ADMIN_MAX_CONNECTIONS, reserve=RESERVED_CONNECTIONS, reserved_for=admin_reserved_for))
        public_http = bounded_protocol(EdgeLimits(max_connections=public_connection_cap(fd_limit()),
                                                  reserve=RESERVED_CONNECTIONS, reserved_for=paths.is_own))
        servers = [
            _EmbeddedServer(uvicorn.Config(admin_app, ws="none", http=admin_http, **_UVICORN)),
            # Request paths carry link tokens: no access log, ever.
            _EmbeddedServer(
                uvicorn.Config(
                    public_app,
                    ws="websockets-sansio",
                    http=public_http,
                    server_header=False,
                    date_header=False,
                    **_UVICORN,
                )
            ),
        ]
        tasks = [
            asyncio.create_task(servers[0].serve(sockets=[admin_sock]), name="admin-listener"),
            asyncio.create_task(servers[1].serve(sockets=[public_sock]), name="public-listener"),
        ]
        exits.push_async_callback(_stop_servers, servers, tasks)
        await _wait_started(servers, tasks)
        if settings.tunnel.provider == "auto" and not settings.server.public_bind:
            lan = _LanListener(servers[1].config, public_port)
            exits.push_async_callback(lan.aclose)
            stack.attach_lan(lan)
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
            on_started(
                Running(
                    stack, admin_url, public_port, str(data_dir / "admin-token"), sessions.login_url(admin_url)
                )
            )
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
    settings: Settings, stack: Stack, admin_port: int, stop: asyncio.Event, sessions: DashboardSessions
) -> tuple[Any, Any, list[Callable[[], Awaitable[None]]]]:
    from linkpronto.gateway.app_proxy import AppProxy
    from linkpronto.gateway.rtc import RtcProxy
    from linkpronto.web.admin import build_admin_app
    from linkpronto.web.public import PublicDeps, build_public_app
    from linkpronto.web.rtc_guard import RevokedRoomGuard

    rtc_proxy = (RtcProxy(lambda: stack.livekit_local_url, stack.livekit_key_pair)
                 if settings.livekit.mode != "cloud" else None)
    rtc = (RevokedRoomGuard(rtc_proxy, stack.links.room_revoked, stack.livekit_key_pair)
           if rtc_proxy is not None else None)
    has_app = bool(settings.app.command or settings.app.port)

    def client_ip_header() -> str | None:
        # A fact of the provider in use (auto: the one it chose); never a list of provider names.
        t = stack.tunnel
        return t.facts.client_ip_header if t is not None else None

    app_proxy = AppProxy(lambda: stack.app_url, lambda: stack.public_url, client_ip_header) if has_app else None

    async def request_stop() -> None:
        stop.set()

    public_app = BodyLimit(build_public_app(PublicDeps(stack, rtc, app_proxy, client_ip_header)), own_body_limit)
    admin_app = build_admin_app(stack, port_getter=lambda: admin_port, shutdown=request_stop, sessions=sessions)
    closers: list[Callable[[], Awaitable[None]]] = [p.aclose for p in (rtc_proxy, app_proxy) if p is not None]
    return admin_app, public_app, closers


class _LanListener:
    """``auto`` binds the public listener to loopback; only if it chooses ``lan`` (devices connect
    directly) is the same app also served on this computer's LAN address — and withdrawn again if
    ``auto`` moves to another provider. WHEN is the stack's decision (``BIND_LAN`` / ``UNBIND_LAN``,
    :func:`linkpronto.machine.decide`); this class only binds and unbinds (``stack.lan``)."""

    def __init__(self, config: uvicorn.Config, port: int) -> None:
        self.config = config
        self.port = port
        self._server: _EmbeddedServer | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def bound(self) -> bool:
        return self._server is not None

    async def bind(self) -> bool:
        """Serve on the LAN address too; False when it cannot (no LAN address, the port is taken)."""
        from linkpronto.tunnels.lan import lan_address

        if self._server is not None:
            return True
        host = lan_address()
        if host == "127.0.0.1":
            return False
        try:
            sock = bind_socket(host, self.port, "public")
        except PortInUse as exc:
            log.warning("auto chose lan but %s:%d could not be bound: %s", host, self.port, exc)
            return False
        self._server = _EmbeddedServer(self.config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]), name="lan-listener")
        return True

    async def unbind(self) -> None:
        server, serving = self._server, self._serving
        self._server = self._serving = None
        if server is not None and serving is not None:
            await _stop_servers([server], [serving])

    async def aclose(self) -> None:
        await self.unbind()


async def _wait_started(servers: list[_EmbeddedServer], tasks: list[asyncio.Task[None]]) -> None:
    deadline = time.monotonic() + 10
    while not all(s.started for s in servers):
        if any(t.done() for t in tasks) or time.monotonic() > deadline:
            raise ListenerFailed()
        await asyncio.sleep(0.01)


async def _stop_servers(servers: list[_EmbeddedServer], tasks: list[asyncio.Task[None]]) -> None:
    for s in servers:
        s.request_exit()
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


def _quiet_repeated_logs() -> Callable[[], None]:
    """One line per kind of failure per window (no ``accept() out of system resource`` flood, no
    traceback per aborted body); returns the undo."""
    filt = RepeatFilter()
    loggers = [logging.getLogger(name) for name in RATE_LIMITED_LOGGERS]
    for lg in loggers:
        lg.addFilter(filt)

    def undo() -> None:
        for lg in loggers:
            lg.removeFilter(filt)

    return undo


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
