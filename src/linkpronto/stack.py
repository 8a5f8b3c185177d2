"""The stack's runner: LiveKit, the tunnel and the user's app composed, one loop carrying out decisions.

Parts report :class:`~linkpronto.machine.Transition` s onto ONE queue (the runner's inbox);
:func:`linkpronto.machine.decide` (pure) turns a snapshot of everything into a
:class:`~linkpronto.machine.Decision` (state, problems, actions, ``wake_at``); this runner only
applies the state (:func:`~linkpronto.machine.check_transition`: an illegal change raises) and
carries the actions out. The proof is :class:`linkpronto.proof.ProofKeeper`'s (single-flight ladder
runs); links are :class:`linkpronto.issuer.LinkIssuer`'s; the Status document is
:mod:`linkpronto.status_view`'s.

::

    parts ──Transition──> inbox ──> loop: snapshot ─> decide ─> apply state ─> carry out actions
                                      ^                                              │
                                      └──────────── a job ends: poke ────────────────┘

How to add an action (e.g. the media rung, a new recovery):

1. add a member to :class:`linkpronto.machine.Action`;
2. write its rule in :func:`linkpronto.machine.decide` (a ``_<name>_rules`` function reading a field
   of the :class:`~linkpronto.machine.Snapshot`) and a table row in ``tests/test_machine.py``;
3. fill that field in :meth:`Stack._snapshot` and map the action to one method in
   ``Stack._handlers``. A long job goes through :meth:`Stack._spawn` (one at a time per action; its
   end wakes the loop; ``self._busy(action)`` tells the snapshot it is in flight).

The media rung is such a hook already: set :attr:`Stack.media_rung` to a coroutine function and
``RUN_MEDIA_RUNG`` runs it under a usable proof, once per part event; its result is
:attr:`Stack.media_result` (nothing happens while no rung is registered).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from linkpronto import keys, paths, schema, status_view
from linkpronto.aio import wait_set
from linkpronto.app_env import app_environment, link_template
from linkpronto.app_part import AppContext, AppPart
from linkpronto.components import Part, PartStatus, utcnow
from linkpronto.config import AppSettings, Settings
from linkpronto.errors import LinkprontoError, TunnelUrlChanged
from linkpronto.events.hub import EventHub, Fanout
from linkpronto.i18n import Lang, Text
from linkpronto.issuer import LinkIssuer
from linkpronto.keys import InstanceSecrets
from linkpronto.links.service import Credentials, LinkService
from linkpronto.links.store import LinkStore
from linkpronto.livekit.local import advertised_node_ip, check_livekit_keys
from linkpronto.livekit.reach import LivekitReach
from linkpronto.livekit.remote import RemoteLivekit, RoomAdmin, ws_base
from linkpronto.machine import (
    Action,
    AppView,
    Decision,
    Events,
    IdleView,
    LanView,
    MediaView,
    PartView,
    Snapshot,
    StoreView,
    Timing,
    Transition,
    TunnelView,
    can_verify,
    check_transition,
    decide,
    invalidates,
)
from linkpronto.media.wiring import media_keeper
from linkpronto.pagecheck import PageRung
from linkpronto.proof import ProofKeeper
from linkpronto.schema import PartState, StackState
from linkpronto.supervise.logtail import OutputHub
from linkpronto.tls import client_context
from linkpronto.verify import Ladder, LadderInput, LadderResult, MediaAssessment, assess_media
from linkpronto.warmup import AppWarmup, app_check_path

if TYPE_CHECKING:
    from linkpronto.tunnels.base import TunnelEvent, TunnelProvider

log = logging.getLogger(__name__)

STATUS_HEARTBEAT_S = 15.0
TUNNEL_RETRY_INITIAL_S = 1.0
TUNNEL_RETRY_MAX_S = 30.0
LADDER_RETRY_S = 1.0
STORE_RETRY_S = 1.0
LAN_RETRY_S = 5.0
INBOX_LIMIT = 256
JOB_FAILED_RETRY_S = 1.0  # a job that raised (a bug): the loop looks again this much later

__all__ = ["STATUS_HEARTBEAT_S", "LanBinder", "Stack", "StackState"]


class LanBinder(Protocol):
    """``auto``'s LAN listener as the runner drives it (``orchestrator._LanListener``)."""

    @property
    def bound(self) -> bool: ...

    async def bind(self) -> bool: ...

    async def unbind(self) -> None: ...


class Stack:
    def __init__(
        self,
        settings: Settings,
        secrets: InstanceSecrets,
        store: LinkStore,
        *,
        admin_url: str,
        livekit: Part | None = None,
        tunnel_factory: Callable[[Callable[[TunnelEvent], None]], TunnelProvider] | None = None,
        install_allowed: bool = True,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.store = store
        self.admin_url = admin_url
        self.install_allowed = install_allowed
        self.api_key, self._api_secret = self._key_pair()
        #: Handed to the app at each start (LINKPRONTO_LOCAL_SECRET): proof of a caller on this computer.
        self.local_secret = keys.new_token()
        self._livekit_override = livekit
        self._tunnel_factory = tunnel_factory
        self.livekit: Part | None = None
        self.tunnel: TunnelProvider | None = None
        self.app: AppPart | None = None
        #: The database's health part (``links.health.StoreHealth``), set by the orchestrator.
        self.storage: Any = None
        #: ``auto``'s LAN listener, attached by the orchestrator (:meth:`attach_lan`).
        self.lan: LanBinder | None = None
        #: The media rung's hook: a coroutine function run by ``RUN_MEDIA_RUNG`` (None: no rung).
        self.media_rung: Callable[[], Awaitable[object]] | None = None
        #: Called with every part's Transition (the payload; after the runner recorded it).
        self.transition_listeners: list[Callable[[Transition], None]] = []
        self.state = StackState.STOPPED
        self.since = utcnow()
        self._reason = Text("", "")
        self._running = False
        self._failure: LinkprontoError | None = None
        self._events = Events()
        self._decision: Decision | None = None
        # The one queue: parts' transitions (None: "look again", e.g. a job ended).
        self._inbox: collections.deque[Transition | None] = collections.deque(maxlen=INBOX_LIMIT)
        self._wake = asyncio.Event()
        self._last_states: dict[str, PartState] = {}
        self._timing = Timing(
            max_age=settings.verify.max_age,
            refresh=settings.verify.interval,
            retry=LADDER_RETRY_S,
            heartbeat=STATUS_HEARTBEAT_S,
            tunnel_retry=TUNNEL_RETRY_INITIAL_S,
            tunnel_retry_max=TUNNEL_RETRY_MAX_S,
            store_retry=STORE_RETRY_S,
            lan_retry=LAN_RETRY_S,
            idle_timeout=settings.stack.idle_timeout if settings.stack.mode == "on-demand" else None,
        )
        # What the runner's jobs found (fed back into the snapshot).
        self._tunnel_view = TunnelView()
        self._store_pinged_at = float("-inf")
        self._lan_failed_at = float("-inf")
        self._counted_at = float("-inf")
        self._count: int | None = None
        self._media_ran_at = float("-inf")
        self.media_result: object = None
        self.proofs = ProofKeeper(
            self._run_ladder_once,
            max_age=settings.verify.max_age,
            can_verify=lambda: can_verify(self._snapshot()),
            gave_up=lambda: self._evaluate().state is StackState.FAILED,
            on_result=self.poke,
            timing=self._timing,
        )
        self._jobs: dict[Action, asyncio.Task[None]] = {}
        self._handlers: dict[Action, Callable[[], Awaitable[None]]] = {
            Action.RUN_LADDER: lambda: self._spawn(Action.RUN_LADDER, self._refresh),
            Action.PROMOTE: self._promote,
            Action.OPEN_TUNNEL: lambda: self._spawn(Action.OPEN_TUNNEL, self._open_tunnel),
            Action.START_APP: lambda: self._spawn(Action.START_APP, self._start_app),
            Action.RESTART_APP: self._restart_app,
            Action.RETRY_STORE: lambda: self._spawn(Action.RETRY_STORE, self._ping_store),
            Action.BIND_LAN: lambda: self._spawn(Action.BIND_LAN, self._bind_lan),
            Action.UNBIND_LAN: lambda: self._spawn(Action.UNBIND_LAN, self._unbind_lan),
            Action.COUNT_PARTICIPANTS: lambda: self._spawn(Action.COUNT_PARTICIPANTS, self._count_participants),
            Action.IDLE_STOP: self._idle_stop,
            Action.RUN_MEDIA_RUNG: lambda: self._spawn(Action.RUN_MEDIA_RUNG, self._run_media_rung),
        }
        self._task: asyncio.Task[None] | None = None
        self._livekit_task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._status_listeners = Fanout(maxsize=64)
        self._last_status_key = ""
        self._client = httpx.AsyncClient(http2=False, verify=client_context())
        # The children's output: streamed into `up`'s terminal and served to `linkpronto logs`.
        self.output = OutputHub()
        self._warmup = AppWarmup()
        self.page_rung = PageRung(settings.verify.page_browser, settings.verify.page_interval)
        self._ladder = Ladder(self._client, self.page_rung)
        self._start_lock = asyncio.Lock()
        self._last_activity = time.monotonic()
        self.links = LinkService(
            store,
            secrets,
            link_path=link_template(settings.app.link_path, has_app=bool(settings.app.command or settings.app.port)),
            default_ttl_s=settings.links.default_ttl,
            default_max_uses=settings.links.max_uses,
            join_token_ttl_s=settings.links.join_token_ttl,
            public_base=lambda: self.public_url,
            credentials=self.credentials,
            remove_participants=self._remove_participants,
            ensure_room=self._ensure_room,
            livekit_answers=LivekitReach(lambda: self.livekit_local_url or self.settings.livekit.url).answers,
        )
        self.issuer = LinkIssuer(self.links, self.proofs, self)
        self.events = EventHub(settings, store, lambda: (self.api_key, self._api_secret), secrets.instance_secret)
        # Problems of parts the web layer owns (the failed-join limiter's shared storage), for the status.
        self.side_problems: list[Callable[[], list[LinkprontoError]]] = []
        self.events.on_change = self.poke
        #: The media rung on its own cadence (media/rung.py); None when verify.media_interval = 0.
        self.media = media_keeper(self) if settings.verify.media_interval > 0 else None

    # -- what the rest of the program reads ---------------------------------------------------------
    @property
    def public_url(self) -> str | None:
        if self.tunnel is None:
            return None
        return self.tunnel.public_url

    @property
    def livekit_local_url(self) -> str | None:
        lk = self.settings.livekit
        if lk.mode == "local":
            return f"http://127.0.0.1:{lk.port}"
        if lk.mode == "external":
            return lk.url or f"http://127.0.0.1:{lk.port}"
        return None

    @property
    def livekit_browser_url(self) -> str | None:
        """What a browser connects to: ``wss://<public>/_linkpronto/livekit`` (proxied) or LiveKit Cloud."""
        if self.settings.livekit.mode == "cloud":
            return self.settings.livekit.url or None
        return ws_base(self.public_url) + paths.LIVEKIT if self.public_url else None

    def livekit_key_pair(self) -> tuple[str, str]:
        """The LiveKit key pair in use (the gateway verifies RoomService JWTs with it)."""
        return self.api_key, self._api_secret

    def credentials(self) -> Credentials | None:
        url = self.livekit_browser_url
        if url is None:
            return None
        return Credentials(self.api_key, self._api_secret, url)

    @property
    def app_url(self) -> str | None:
        if self.settings.app.port:
            return f"http://127.0.0.1:{self.settings.app.port}"
        return None

    def verification_fresh(self) -> bool:
        return self.proofs.current() is not None

    @property
    def reason(self) -> str:
        return self._reason.en

    def _key_pair(self) -> tuple[str, str]:
        lk = self.settings.livekit
        secret = lk.api_secret.get_secret_value()
        if lk.mode == "local" and not (lk.api_key and secret):
            return self.secrets.livekit_api_key, self.secrets.livekit_api_secret
        return lk.api_key, secret

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start LiveKit and the loop (which opens the tunnel, then starts the app); returns at once
        (progress shows in status)."""
        async with self._start_lock:
            if self._running:
                return
            self._failure = None
            self.proofs.reset()
            self._tunnel_view = TunnelView()
            self._counted_at, self._count = float("-inf"), None
            self._media_ran_at = float("-inf")
            loop = asyncio.get_running_loop()

            def store_changed() -> None:  # called from a database thread
                loop.call_soon_threadsafe(self.part_changed, "store")

            self.store.on_change = store_changed
            self._running = True
            self._apply(self._evaluate())
            self._task = asyncio.create_task(self._loop(), name="stack-loop")
            try:
                check_livekit_keys(self.api_key, self._api_secret, self.settings.tunnel.provider)
            except LinkprontoError as exc:
                self._failure = exc
                self.poke()
                return
            self.livekit = self._livekit_override or self._build_livekit()
            self._watch("livekit", self.livekit)
            # LiveKit may need a download first: start it in the background (progress shows in status)
            # while the loop opens the tunnel — the public listener already serves, so the tunnel never
            # points at nothing.
            self._livekit_task = asyncio.create_task(self._start_livekit(self.livekit), name="livekit-start")
            if self.media is not None:
                self.media.start()
            self.poke()

    async def _start_livekit(self, livekit: Part) -> None:
        try:
            await livekit.start()
        except LinkprontoError as exc:
            self._failure = exc
            self.poke()

    async def stop(self) -> None:
        async with self._start_lock:
            self._running = False
            self._warmup.close()
            tasks = (self._livekit_task, *self._jobs.values(), self._task)
            for task in tasks:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._livekit_task = self._task = None
            self._jobs.clear()
            if self.media is not None:
                await self.media.stop()
            await self.page_rung.aclose()
            for unsub in self._unsubscribe:
                unsub()
            self._unsubscribe.clear()
            if self.app is not None:
                await self.app.stop()
                self.app = None
            if self.tunnel is not None:
                with contextlib.suppress(LinkprontoError):
                    await self.tunnel.close()
            if self.livekit is not None:
                await self.livekit.stop()
                self.livekit = None
            self.proofs.reset()
            self._last_states.clear()
            self._apply(self._evaluate())

    async def aclose(self) -> None:
        await self.stop()
        await self._client.aclose()

    # -- the inbox ------------------------------------------------------------------------------------
    def poke(self) -> None:
        """Look again (something that is not a part changed: a job ended, a presence event)."""
        self._inbox.append(None)
        self._wake.set()
        if self.media is not None:
            self.media.poke()  # it runs at once when the public URL or LiveKit changed

    def invalidate(self) -> None:
        """Every proof so far is no proof (the URL changed)."""
        self.proofs.invalidate()
        self.poke()

    def part_changed(self, name: str) -> None:
        """A part without ``subscribe`` (the store, its storage) changed: report its transition."""
        status = self._components().get(name)
        if status is not None:
            self._report(name, status)
        else:
            self.poke()

    def _report(self, name: str, status: PartStatus) -> None:
        old = self._last_states.get(name)
        self._last_states[name] = status.state
        self._push(Transition(name, old, status.state, status.detail, time.monotonic()))

    def _push(self, t: Transition) -> None:
        # Applied at once, not when the loop gets to it: a ladder run starting in between must
        # already count as older than the event.
        if invalidates(t):
            self.proofs.invalidate()
        if t.old is not t.new:
            log.debug("part %s: %s -> %s %s", t.part, t.old.value if t.old else "-", t.new.value, t.why.en)
        for listener in list(self.transition_listeners):
            try:
                listener(t)
            except Exception:  # a faulty listener must not break the runner
                log.exception("transition listener failed")
        self._inbox.append(t)
        self._wake.set()

    def _watch(self, name: str, part: Part) -> None:
        """Take ``part``'s transitions from now on, starting with where it is (``old`` None)."""
        self._unsubscribe.append(part.subscribe(lambda status: self._report(name, status)))
        self._report(name, part.status())

    def attach_lan(self, lan: LanBinder) -> None:
        self.lan = lan
        self.poke()

    # -- building components -----------------------------------------------------------------------
    def _build_livekit(self) -> Part:
        lk = self.settings.livekit
        if lk.mode == "local":
            from linkpronto.livekit.local import LocalLivekit

            return LocalLivekit(
                self.settings,
                api_key=self.api_key,
                api_secret=self._api_secret,
                install_allowed=self.install_allowed,
                on_line=self.output.sink("livekit"),
            )
        mode: Any = lk.mode
        url = lk.url or f"http://127.0.0.1:{lk.port}"
        return RemoteLivekit(mode, url, self.api_key, self._api_secret)

    def _build_tunnel(self) -> TunnelProvider:
        if self._tunnel_factory is not None:
            return self._tunnel_factory(self._on_tunnel_event)
        from linkpronto.tunnels import build_tunnel

        return build_tunnel(
            self.settings, on_event=self._on_tunnel_event, install_allowed=self.install_allowed
        )

    def _app_context(self) -> AppContext:
        return AppContext(self.public_url, self.livekit_browser_url, self.admin_url, self.secrets.admin_token,
                          self.events.secret)

    def _app_environment(self, app: AppSettings, ctx: AppContext) -> dict[str, str]:
        """The app's environment (app_env.py): the context's URLs plus the LiveKit pair in use."""
        return app_environment(
            public_url=ctx.public_url,
            livekit_browser_url=ctx.livekit_browser_url,
            livekit_server_url=self.livekit_local_url or self.settings.livekit.url or None,
            api_key=self.api_key,
            api_secret=self._api_secret,
            admin_url=ctx.admin_url,
            admin_token=ctx.admin_token,
            port=app.port,
            events_secret=ctx.events_secret,
            local_secret=self.local_secret,
        )

    # -- the jobs (each one action's work) -----------------------------------------------------------
    async def _spawn(self, action: Action, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` in the background, one at a time per action; its end wakes the loop."""
        if self._busy(action):
            return

        async def run() -> None:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a job must not kill the runner, nor make it spin: look again later
                log.exception("stack job %s failed", action.value)
                asyncio.get_running_loop().call_later(JOB_FAILED_RETRY_S, self.poke)
            else:
                self.poke()

        self._jobs[action] = asyncio.create_task(run(), name=f"stack-{action.value}")

    def _busy(self, action: Action) -> bool:
        task = self._jobs.get(action)
        return task is not None and not task.done()

    async def _open_tunnel(self) -> None:
        failures = self._tunnel_view.failures
        try:
            tunnel = self.tunnel = self._build_tunnel()
            await tunnel.open()
        except LinkprontoError as exc:
            # TUNNEL_UNREACHABLE is retried (machine: back-off); anything else fails the stack.
            self._tunnel_view = TunnelView(failures=failures + 1, failed_at=time.monotonic(), error=exc)
            return
        self._tunnel_view = TunnelView(opened=True)
        self.invalidate()
        self._watch("tunnel", tunnel)

    async def _start_app(self) -> None:
        app = self.app = AppPart(self.settings.app, self._app_context, environment=self._app_environment,
                                 on_line=self.output.sink("app"), redact=(self._api_secret, self.local_secret))
        self._watch("app", app)
        if self.app_url:  # warm the link route as soon as the port opens (a dev server's first compile)
            check = app_check_path(self.settings.app.health_path, self.links.link_path, paths.PROBE_TOKEN)
            self._unsubscribe.append(self._warmup.watch(app, self.app_url, [check], self.poke))
        try:
            await app.start()
        except LinkprontoError:
            # PORT_IN_USE, a missing program...: the part is FAILED and holds the error, which the
            # machine turns into the stack's failure (with the holder / the command named).
            pass

    async def _restart_app(self) -> None:
        if self.app is not None:
            self.app.restart_with(self.public_url)

    async def _ping_store(self) -> None:
        self._store_pinged_at = time.monotonic()
        await self.store.call(self.store.ping)  # clears store.failure when it answers (on_change)

    async def _bind_lan(self) -> None:
        if self.lan is not None and not await self.lan.bind():
            self._lan_failed_at = time.monotonic()

    async def _unbind_lan(self) -> None:
        if self.lan is not None:
            await self.lan.unbind()

    async def _count_participants(self) -> None:
        self._counted_at = time.monotonic()
        admin = self.room_admin()
        self._count = await admin.total_participants() if admin else 0

    async def _idle_stop(self) -> None:
        if self._stop_task is None or self._stop_task.done():
            log.info("on-demand: idle for %.0f s with nobody in a room; stopping the stack",
                     self.settings.stack.idle_timeout)
            self._stop_task = asyncio.create_task(self.stop(), name="idle-stop")

    async def _run_media_rung(self) -> None:
        rung = self.media_rung
        if rung is None:
            return
        self._media_ran_at = time.monotonic()
        self.media_result = await rung()

    async def _promote(self) -> None:
        result = self.proofs.latest
        proof = self.proofs.current()
        if result is not None and proof is not None:
            checks = json.loads(proof.checks_json)
            ids = await self.store.call(self.store.preparing_ids)
            if ids:
                await self.store.call(
                    self.store.mark_ready, ids, verified_at=proof.verified_at, base_url=proof.base_url, checks=checks,
                )
            self.proofs.mark_promoted(result)

    async def _refresh(self) -> None:
        await self.proofs.refresh()

    def _on_tunnel_event(self, event: TunnelEvent) -> None:
        from linkpronto.tunnels.base import TunnelEventKind

        if event.kind is TunnelEventKind.URL_CHANGED:
            log.warning("TUNNEL_URL_CHANGED old=%s new=%s", event.old_url, event.url)
            self._events.add(time.monotonic(), TunnelUrlChanged.between(event.old_url, event.url))
        self.invalidate()

    # -- the snapshot and the loop -------------------------------------------------------------------
    def _components(self) -> dict[str, PartStatus]:
        parts: dict[str, Part | None] = {"livekit": self.livekit, "tunnel": self.tunnel, "app": self.app}
        out = {name: part.status() for name, part in parts.items() if part is not None}
        # The links database: "store" = it answers (connection), "storage" = its disk and file.
        out["store"] = self.store.status()
        if self.storage is not None:
            out["storage"] = self.storage.status()
        return out

    def _needed(self) -> tuple[str, ...]:
        parts = ("livekit", "tunnel", "app") if self.settings.app.command else ("livekit", "tunnel")
        parts = ("store", *parts)
        return (*parts, "storage") if self.storage is not None else parts

    def can_verify(self) -> bool:
        """Whether a proof may be sought now (the ladder's and the media rung's precondition)."""
        return can_verify(self._snapshot())

    def _snapshot(self) -> Snapshot:
        tunnel, app, lan = self.tunnel, self.app, self.lan
        return Snapshot(
            running=self._running,
            previous=self.state,
            parts=tuple(
                PartView(name, st.state, st.detail, st.error)
                for name, st in self._components().items()
            ),
            needed=self._needed(),
            failure=self._failure,
            invalidated_at=self.proofs.invalidated_at,
            ladder_running=self.proofs.running,
            https=tunnel.facts.https if tunnel is not None and tunnel.public_url else None,
            public_url=self.public_url,
            events=self._events.snapshot(),
            tunnel=dataclasses.replace(self._tunnel_view, opening=self._busy(Action.OPEN_TUNNEL)),
            app=AppView(
                started=app is not None,
                starting=self._busy(Action.START_APP),
                url=app.url if app is not None else None,
                restart_on_url_change=self.settings.app.restart_on_url_change,
            ) if self.settings.app.command else None,
            store=StoreView(
                down=self.store.failure is not None,
                pinging=self._busy(Action.RETRY_STORE),
                pinged_at=self._store_pinged_at,
            ),
            lan=LanView(
                wanted=tunnel is not None and tunnel.facts.binds_lan,
                bound=lan.bound,
                failed_at=self._lan_failed_at,
            ) if lan is not None else None,
            idle=IdleView(
                last_activity=self._last_activity,
                counting=self._busy(Action.COUNT_PARTICIPANTS),
                counted_at=self._counted_at,
                count=self._count,
            ) if self._timing.idle_timeout is not None else None,
            media=MediaView(
                registered=self.media_rung is not None,
                running=self._busy(Action.RUN_MEDIA_RUNG),
                ran_at=self._media_ran_at,
                result=self.media_result,
            ),
        )

    def _evaluate(self) -> Decision:
        return decide(self._snapshot(), self.proofs.view(), time.monotonic(), self._timing)

    def _apply(self, decision: Decision) -> None:
        """Take the decision's state (raises IllegalTransition for a change LEGAL does not allow)."""
        check_transition(self.state, decision.state)
        self._decision = decision
        self._set_state(decision.state, decision.reason)

    async def _loop(self) -> None:
        while True:
            wake_at = time.monotonic() + STATUS_HEARTBEAT_S
            try:
                decision = self._evaluate()
                self._apply(decision)
                for action in decision.actions:
                    await self._handlers[action]()
                wake_at = decision.wake_at
            except Exception:  # the loop must survive anything; the state says what went wrong
                log.exception("stack evaluation failed")
            self.proofs.changed()
            self._publish()
            await self._next_messages(max(0.0, min(wake_at - time.monotonic(), STATUS_HEARTBEAT_S)))

    async def _next_messages(self, within: float) -> list[Transition]:
        """Wait up to ``within`` seconds for the inbox, then take everything in it."""
        if not self._inbox:
            # not wait_for (see aio.wait_set): `stop` then waited for the next heartbeat (15 s).
            await wait_set(self._wake, within)
        self._wake.clear()
        taken = [t for t in self._inbox if t is not None]
        self._inbox.clear()
        return taken

    async def run_ladder(self) -> LadderResult:
        """Run the ladder now (shared with a run in flight)."""
        return await self.proofs.refresh()

    async def _run_ladder_once(self) -> tuple[LadderResult, str | None]:
        inp = self._ladder_input()
        return await self._ladder.run(inp), inp.public_url

    def _ladder_input(self) -> LadderInput:
        lk = self.settings.livekit
        node_ip = advertised_node_ip(self.settings)
        return LadderInput(
            public_url=self.public_url,
            instance_id=self.secrets.instance_id,
            probe_mac=self.secrets.probe_mac,
            api_key=self.api_key,
            api_secret=self._api_secret,
            livekit_local_url=self.livekit_local_url,
            livekit_cloud_url=lk.url if lk.mode == "cloud" else None,
            app_url=self.app_url if self.settings.app.command or self.settings.app.port else None,
            app_health_path=app_check_path(self.settings.app.health_path, self.links.link_path, paths.PROBE_TOKEN),
            link_path=self.links.link_path,
            app_budget_s=self._warmup.budget_s,
            media=self._assess_media(node_ip),
            media_result=self.media.result_for(self.public_url) if self.media is not None else None,
            media_pending=self.media is not None and self.media.result_for(self.public_url) is None,
        )

    def _assess_media(self, node_ip: str) -> MediaAssessment:
        """The configuration's judgement (the fallback when the media rung cannot measure)."""
        lk = self.settings.livekit
        return assess_media(
            livekit_mode=lk.mode,
            node_ip=node_ip,
            turn_url=lk.turn_url,
            forwards_media=self.tunnel.facts.forwards_media if self.tunnel else False,
        )

    # -- StackControl (what the issuer asks) -------------------------------------------------------------
    def failure(self) -> LinkprontoError | None:
        return self._evaluate().failure

    async def ensure_started(self) -> None:
        if not self._running:
            await self.start()

    async def _remove_participants(self, room: str) -> int:
        admin = self.room_admin()
        return await admin.remove_all(room) if admin else 0

    async def _ensure_room(self, room: str) -> str | None:
        admin = self.room_admin()
        return await admin.create_room(room) if admin else None

    def room_admin(self) -> RoomAdmin | None:
        url = self.livekit_local_url or self.settings.livekit.url
        if not url:
            return None
        return RoomAdmin(url, self.api_key, self._api_secret)

    def touch(self) -> None:
        self._last_activity = time.monotonic()

    # -- state and status -----------------------------------------------------------------------------
    def _set_state(self, state: StackState, reason: Text) -> None:
        if state is not self.state:
            log.info("stack %s -> %s %s", self.state.value, state.value, reason.en)
            self.state = state
            self.since = utcnow()
        self._reason = reason
        self._publish()

    def problems(self, lang: Lang | None = None) -> list[dict[str, Any]]:
        return [e.to_problem(lang) for e in self._evaluate().problems]

    def status(self, lang: Lang | None = None) -> schema.Status:
        """The **Status** document in ``lang`` (:mod:`linkpronto.status_view`)."""
        return status_view.render(
            self._evaluate(),
            state=self.state,
            since=self.since,
            reason=self._reason,
            mode=self.settings.stack.mode,
            urls=(self.public_url, self.livekit_browser_url, self.admin_url),
            tunnel=status_view.tunnel_info(self.tunnel, self.settings.tunnel.provider, lang),
            parts=self._components(),
            proofs=self.proofs,
            extra_problems=[*self.events.problems(), *(p for source in self.side_problems for p in source())],
            lang=lang,
        )

    def status_json(self, lang: Lang | None = None) -> dict[str, Any]:
        return schema.dump(self.status(lang))

    def subscribe_status(self) -> asyncio.Queue[dict[str, Any]]:
        return self._status_listeners.subscribe()

    def unsubscribe_status(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._status_listeners.unsubscribe(q)

    def _publish(self) -> None:
        if not self._status_listeners:
            return
        doc = self.status_json()
        key_doc = dict(doc)
        key_doc["verification"] = {k: v for k, v in doc["verification"].items() if k != "age_s"}
        key = json.dumps(key_doc, sort_keys=True, default=str)
        if key == self._last_status_key:
            return
        self._last_status_key = key
        self._status_listeners.publish(doc)
