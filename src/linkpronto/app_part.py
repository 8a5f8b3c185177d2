"""The user's app as a part: a supervised process that can be restarted with a new public URL.

WHEN to restart is :func:`linkpronto.machine.decide`'s rule (``app.restart_on_url_change``: the
public URL differs from :attr:`AppPart.url`; from that moment the app counts as not up, so no ladder
run can prove the stack while the app has the old URL in its environment). This part only carries the
restart out (:meth:`AppPart.restart_with`): it counts as ``restarting``, the process is stopped and
started again with the new environment. One restart at a time: URLs asked for during a restart are
folded into it (the loop restarts until the environment is current).

The environment is built in ONE function, :func:`app_environment`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from linkpronto.components import Observable, PartStatus
from linkpronto.config import AppSettings
from linkpronto.errors import AppCrashLoop, LinkprontoError
from linkpronto.i18n import Text
from linkpronto.machine import APP_RESTARTING
from linkpronto.schema import PartState
from linkpronto.supervise import ManagedProcess
from linkpronto.supervise.spec import ProcessSpec, RestartPolicy, TcpProbe

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the app's environment is made of, at one moment."""

    public_url: str | None
    livekit_browser_url: str | None
    admin_url: str
    admin_token: str
    events_secret: str = ""  # HMAC key of the presence callbacks (linkpronto.events)


def app_environment(app: AppSettings, ctx: AppContext) -> dict[str, str]:
    """The app's environment (CONTRACT.md, "The user's app, when supervised")."""
    env = {
        "NEXT_PUBLIC_SITE_URL": ctx.public_url or "",
        "NEXT_PUBLIC_LIVEKIT_URL": ctx.livekit_browser_url or "",
        "LINKPRONTO_ADMIN_URL": ctx.admin_url,
        "LINKPRONTO_ADMIN_TOKEN": ctx.admin_token,
        "LINKPRONTO_PUBLIC_URL": ctx.public_url or "",
    }
    if ctx.events_secret:
        env["LINKPRONTO_EVENTS_SECRET"] = ctx.events_secret
    if app.port:
        env["PORT"] = str(app.port)
    return env


class AppPart(Observable):
    name = "app"

    def __init__(
        self,
        app: AppSettings,
        context: Callable[[], AppContext],
        *,
        environment: Callable[[AppSettings, AppContext], Mapping[str, str]] = app_environment,
        on_line: Callable[[str], None] | None = None,
        redact: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.settings = app
        self._context = context
        self._environment = environment
        self._on_line = on_line  # each output line (redacted): up's terminal, `linkpronto logs app`
        self._redact = redact
        self._process: ManagedProcess | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._started_url: str | None = None
        self._wanted_url: str | None = None
        self._restart_task: asyncio.Task[None] | None = None
        self._restarts = 0
        self._stopped = True

    # -- Part ---------------------------------------------------------------------------------------
    def status(self) -> PartStatus:
        proc = self._process
        if self._restart_task is not None and not self._restart_task.done():
            return PartStatus(
                state=PartState.RESTARTING,
                detail=APP_RESTARTING,
                pid=proc.pid if proc is not None else None,
                restarts=self._restarts,
            )
        if proc is None:
            return PartStatus(detail=Text("não iniciado", "not started"))
        url = f"http://127.0.0.1:{self.settings.port}" if self.settings.port else None
        return dataclasses.replace(proc.status(), url=url)

    async def start(self) -> None:
        """Start the app with the current environment. Raises what the process raises (PORT_IN_USE,
        a missing program); the part is then FAILED with that error."""
        self._stopped = False
        ctx = self._context()
        self._started_url = self._wanted_url = ctx.public_url
        await self._spawn(ctx)

    async def stop(self) -> None:
        self._stopped = True
        task, self._restart_task = self._restart_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_process()
        self._notify()

    def log_tail(self) -> list[str]:
        return self._process.log_tail() if self._process is not None else []

    # -- restarting with a new public URL (the runner's RESTART_APP; the rule is machine.decide's) --------
    @property
    def url(self) -> str | None:
        """The public URL the app's environment has, or is being restarted with."""
        return self._wanted_url

    def restart_with(self, url: str | None) -> None:
        if self._stopped or not url or url == self._wanted_url:
            return
        self._wanted_url = url
        if self._restart_task is None or self._restart_task.done():
            self._restart_task = asyncio.create_task(self._restart_until_current(), name="app-restart")
            self._notify()  # listeners see ``restarting`` at once

    async def _restart_until_current(self) -> None:
        while not self._stopped and self._started_url != self._wanted_url:
            log.info("app: public URL is now %s; restarting the app", self._wanted_url)
            restarts = (self._process.restarts if self._process is not None else 0) + 1
            await self._stop_process()
            ctx = self._context()
            self._started_url = ctx.public_url
            try:
                await self._spawn(ctx, restarts)
            except LinkprontoError:
                break  # the part is FAILED with the error; the runner reports it
        # The restart is over: listeners see the process's own state again.
        asyncio.get_running_loop().call_soon(self._notify)

    # -- the process ---------------------------------------------------------------------------------
    def _spec(self, ctx: AppContext) -> ProcessSpec:
        app = self.settings
        return ProcessSpec(
            name="app",
            argv=tuple(loopback_dev_server(app.argv())),
            env=dict(self._environment(app, ctx)),
            cwd=app.cwd,
            readiness=TcpProbe("127.0.0.1", app.port, period_s=0.2, timeout_s=1.0) if app.port else None,
            restart=RestartPolicy(),
            start_timeout_s=120.0,
            error_code=AppCrashLoop.code,
            port=app.port or None,
            redact=(ctx.admin_token, *self._redact, *((ctx.events_secret,) if ctx.events_secret else ())),
        )

    async def _spawn(self, ctx: AppContext, restarts: int = 0) -> None:
        process = self._process = ManagedProcess(self._spec(ctx), on_line=self._on_line)
        process.restarts = restarts
        self._restarts = restarts
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = process.subscribe(lambda _status: self._notify())
        try:
            await process.start()
        finally:
            self._notify()

    async def _stop_process(self) -> None:
        proc = self._process
        if proc is None:
            return
        try:
            await proc.stop()
        except asyncio.CancelledError:
            await proc.stop()  # cancelled mid-stop (the stack stops): still stop the tree completely
            raise


_NEXT_BINS = frozenset({"next", "next.cmd", "next.exe", "next.js"})
_HOST_FLAGS = ("-H", "--hostname")


def loopback_dev_server(argv: list[str]) -> list[str]:
    """``next dev`` listens on every interface by default: a device on the same network could call the
    app directly, bypassing the gateway. For a command recognised as ``next dev`` (``npx next dev``,
    ``next dev``, ``node_modules/.bin/next dev``) add ``-H 127.0.0.1`` right after ``dev`` — unless the
    user gave ``-H``/``--hostname`` — so the app listens on loopback only (the gateway reaches it
    there). Any other command is returned unchanged. argv in, argv out: never a shell string."""
    for i, word in enumerate(argv[:-1]):
        name = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
        if name in _NEXT_BINS and argv[i + 1] == "dev":
            rest = argv[i + 2:]
            if any(a in _HOST_FLAGS or a.startswith(("--hostname=", "-H=")) for a in rest):
                return list(argv)
            return [*argv[: i + 2], "-H", "127.0.0.1", *rest]
    return list(argv)
