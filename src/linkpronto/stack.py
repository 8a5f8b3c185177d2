"""The stack's runner: LiveKit, the tunnel and the user's app composed, one loop carrying out decisions.

The decisions are :func:`linkpronto.machine.decide`'s (pure: state, problems, actions, when to look
again); the proof is :class:`linkpronto.proof.ProofKeeper`'s (single-flight ladder runs, kept fresh
before it ages out of ``verify.max_age``); links are :class:`linkpronto.issuer.LinkIssuer`'s. This
module owns the parts' lifecycles and the loop, and renders the **Status** document.

::

    stopped ──start──> starting ──all parts up──> verifying ──ladder ok──> ready
                          ^                           │                     │
                          │                           └─── ladder fails ────┤
                          └─── part down / ladder fails / URL changed ──> degraded
    a part that cannot recover unattended (crash loop, bad keys, no binary) ──> failed
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from linkpronto import paths, schema
from linkpronto.app_env import app_environment, link_template
from linkpronto.app_part import AppContext, AppPart
from linkpronto.components import Part, PartStatus, utcnow
from linkpronto.config import AppSettings, Settings
from linkpronto.errors import LinkprontoError, TunnelError, TunnelUnreachable, TunnelUrlChanged
from linkpronto.events.hub import EventHub, Fanout
from linkpronto.i18n import Lang, Text
from linkpronto.issuer import LinkIssuer
from linkpronto.keys import InstanceSecrets
from linkpronto.links.service import Credentials, LinkService
from linkpronto.links.store import LinkStore
from linkpronto.livekit.local import check_livekit_keys
from linkpronto.livekit.reach import LivekitReach
from linkpronto.livekit.remote import RemoteLivekit, RoomAdmin, ws_base
from linkpronto.machine import Action, Decision, Events, PartView, Snapshot, Timing, decide
from linkpronto.pagecheck import PageRung
from linkpronto.proof import ProofKeeper
from linkpronto.schema import PartState, StackState
from linkpronto.supervise.logtail import OutputHub
from linkpronto.tls import client_context
from linkpronto.verify import Ladder, LadderInput, LadderResult, assess_media
from linkpronto.warmup import AppWarmup, app_check_path

if TYPE_CHECKING:
    from linkpronto.tunnels.base import TunnelEvent, TunnelProvider

log = logging.getLogger(__name__)

STATUS_HEARTBEAT_S = 15.0
TUNNEL_RETRY_INITIAL_S = 1.0
TUNNEL_RETRY_MAX_S = 30.0
LADDER_RETRY_S = 1.0

__all__ = ["STATUS_HEARTBEAT_S", "Stack", "StackState"]


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
        self._livekit_override = livekit
        self._tunnel_factory = tunnel_factory
        self.livekit: Part | None = None
        self.tunnel: TunnelProvider | None = None
        self.app: AppPart | None = None
        #: The database's health part (``links.health.StoreHealth``), set by the orchestrator.
        self.storage: Any = None
        self.state = StackState.STOPPED
        self.since = utcnow()
        self._reason = Text("", "")
        self._failure: LinkprontoError | None = None
        self._events = Events()
        self._decision: Decision | None = None
        self._wake = asyncio.Event()
        self._timing = Timing(
            max_age=settings.verify.max_age,
            refresh=settings.verify.interval,
            retry=LADDER_RETRY_S,
            heartbeat=STATUS_HEARTBEAT_S,
        )
        self.proofs = ProofKeeper(
            self._run_ladder_once,
            max_age=settings.verify.max_age,
            can_verify=self._can_verify,
            gave_up=lambda: self._evaluate().state is StackState.FAILED,
            on_result=self.poke,
        )
        self._ladder_task: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._tunnel_task: asyncio.Task[None] | None = None
        self._livekit_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
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
        """Start every component and the evaluation loop; returns at once (progress shows in status)."""
        async with self._start_lock:
            if self._task is not None:
                return
            self._failure = None
            self.proofs.reset()
            loop = asyncio.get_running_loop()

            def store_changed() -> None:  # called from a database thread
                loop.call_soon_threadsafe(self.poke)

            self.store.on_change = store_changed
            self._set_state(StackState.STARTING, Text("iniciando as partes", "starting the parts"))
            self._task = asyncio.create_task(self._loop(), name="stack-loop")
            try:
                check_livekit_keys(self.api_key, self._api_secret, self.settings.tunnel.provider)
            except LinkprontoError as exc:
                self._fail(exc)
                return
            self.livekit = self._livekit_override or self._build_livekit()
            self._watch(self.livekit)
            # LiveKit may need a download first: start it in the background (progress shows in status)
            # while the tunnel opens — the public listener already serves, so the tunnel never points
            # at nothing.
            self._livekit_task = asyncio.create_task(self._start_livekit(self.livekit), name="livekit-start")
            self._tunnel_task = asyncio.create_task(self._open_tunnel(), name="tunnel-open")
            if self.settings.stack.mode == "on-demand":
                self._idle_task = asyncio.create_task(self._idle_watch(), name="idle-stop")
            self.poke()

    async def _start_livekit(self, livekit: Part) -> None:
        try:
            await livekit.start()
        except LinkprontoError as exc:
            self._fail(exc)

    async def stop(self) -> None:
        async with self._start_lock:
            self._warmup.close()
            tasks = (
                self._idle_task, self._livekit_task, self._tunnel_task, self._ladder_task, self._task,
            )
            for task in tasks:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._idle_task = self._livekit_task = self._tunnel_task = None
            self._ladder_task = self._task = None
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
            self._set_state(StackState.STOPPED, Text("", ""))

    async def aclose(self) -> None:
        await self.stop()
        await self._client.aclose()

    def poke(self) -> None:
        """Something changed: re-evaluate soon."""
        self._wake.set()

    def invalidate(self) -> None:
        """Every proof so far is no proof (a part went down, the URL changed)."""
        self.proofs.invalidate()
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
        )

    def _watch(self, part: Part) -> Callable[[], None]:
        def changed(status: PartStatus) -> None:
            if not status.state.is_up:
                self.invalidate()
            else:
                self.poke()

        unsubscribe = part.subscribe(changed)
        self._unsubscribe.append(unsubscribe)
        return unsubscribe

    # -- the tunnel ----------------------------------------------------------------------------------
    async def _open_tunnel(self) -> None:
        delay = TUNNEL_RETRY_INITIAL_S
        while True:
            tunnel = self.tunnel = self._build_tunnel()
            try:
                await tunnel.open()
            except (TunnelError, LinkprontoError) as exc:
                recoverable = exc.code == TunnelUnreachable.code
                self.poke()
                if not recoverable:
                    self._fail(exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, TUNNEL_RETRY_MAX_S)
                continue
            break
        self.invalidate()
        self._watch(tunnel)
        if self.settings.app.command:
            app = self.app = AppPart(self.settings.app, self._app_context, environment=self._app_environment,
                                     on_line=self.output.sink("app"), redact=(self._api_secret,))
            self._watch(app)
            if self.app_url:  # warm the link route as soon as the port opens (a dev server's first compile)
                check = app_check_path(self.settings.app.health_path, self.links.link_path, paths.PROBE_TOKEN)
                self._unsubscribe.append(self._warmup.watch(app, self.app_url, [check], self.poke))
            # The app's own rule: a new public URL restarts it (app.restart_on_url_change).
            self._unsubscribe.append(tunnel.subscribe(lambda status: app.on_public_url(status.url)))
            try:
                await app.start()
            except LinkprontoError:
                # PORT_IN_USE, a missing program...: the part is FAILED and holds the error, which the
                # machine turns into the stack's failure (with the holder / the command named).
                self.poke()

    def _on_tunnel_event(self, event: TunnelEvent) -> None:
        from linkpronto.tunnels.base import TunnelEventKind

        if event.kind is TunnelEventKind.URL_CHANGED:
            log.warning("TUNNEL_URL_CHANGED old=%s new=%s", event.old_url, event.url)
            self._events.add(time.monotonic(), TunnelUrlChanged.between(event.old_url, event.url))
        self.invalidate()

    # -- evaluation ----------------------------------------------------------------------------------
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

    def _snapshot(self) -> Snapshot:
        tunnel = self.tunnel
        return Snapshot(
            running=self._task is not None,
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
        )

    def _evaluate(self) -> Decision:
        return decide(self._snapshot(), self.proofs.view(), time.monotonic(), self._timing)

    def _can_verify(self) -> bool:
        snap = self._snapshot()
        if not snap.running or snap.failure is not None:
            return False
        up = {p.name for p in snap.parts if p.state.is_up}
        return all(name in up for name in snap.needed)

    async def _loop(self) -> None:
        while True:
            wake_at = time.monotonic() + STATUS_HEARTBEAT_S
            try:
                decision = self._evaluate()
                await self._carry_out(decision)
                wake_at = decision.wake_at
            except Exception:  # the loop must survive anything; the state says what went wrong
                log.exception("stack evaluation failed")
            self.proofs.changed()
            self._publish()
            timeout = max(0.0, min(wake_at - time.monotonic(), STATUS_HEARTBEAT_S))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    async def _carry_out(self, decision: Decision) -> None:
        self._decision = decision
        self._set_state(decision.state, decision.reason)
        if self.store.failure is not None and not await self.store.call(self.store.ping):
            # The links database is down: degraded until it answers again (checked every second).
            asyncio.get_running_loop().call_later(1.0, self.poke)
        for action in decision.actions:
            if action is Action.RUN_LADDER:
                if self._ladder_task is None or self._ladder_task.done():
                    self._ladder_task = asyncio.create_task(self._refresh(), name="ladder-refresh")
            elif action is Action.PROMOTE:
                result = self.proofs.latest
                proof = self.proofs.current()
                if result is not None and proof is not None:
                    checks = json.loads(proof.checks_json)
                    ids = await self.store.call(self.store.preparing_ids)
                    if ids:
                        await self.store.call(
                            self.store.mark_ready, ids, verified_at=proof.verified_at, base_url=proof.base_url,
                            checks=checks,
                        )
                    self.proofs.mark_promoted(result)

    async def _refresh(self) -> None:
        try:
            await self.proofs.refresh()
        except Exception:  # a ladder bug must not kill the runner; the next evaluation retries
            log.exception("verification ladder failed")

    async def run_ladder(self) -> LadderResult:
        """Run the ladder now (shared with a run in flight)."""
        return await self.proofs.refresh()

    async def _run_ladder_once(self) -> tuple[LadderResult, str | None]:
        inp = self._ladder_input()
        return await self._ladder.run(inp), inp.public_url

    def _ladder_input(self) -> LadderInput:
        lk = self.settings.livekit
        node_ip = lk.node_ip
        if not node_ip and lk.mode != "cloud":
            from linkpronto.platform import lan_address

            node_ip = lan_address()
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
            media=assess_media(
                livekit_mode=lk.mode,
                node_ip=node_ip,
                turn_url=lk.turn_url,
                forwards_media=self.tunnel.facts.forwards_media if self.tunnel else False,
            ),
        )

    # -- StackControl (what the issuer asks) -------------------------------------------------------------
    def failure(self) -> LinkprontoError | None:
        decision = self._evaluate()
        if decision.state is not StackState.FAILED:
            return None
        if self._failure is not None:
            return self._failure
        return next((p.error for p in self._snapshot().parts if p.state is PartState.FAILED and p.error), None)

    async def ensure_started(self) -> None:
        if self._task is None:
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

    async def _idle_watch(self) -> None:
        """On-demand mode: stop the stack after ``idle_timeout`` with nobody in any room."""
        timeout = self.settings.stack.idle_timeout
        period = max(0.5, min(60.0, timeout / 4))
        while True:
            await asyncio.sleep(period)
            if time.monotonic() - self._last_activity < timeout:
                continue
            admin = self.room_admin()
            count = await admin.total_participants() if admin else 0
            if count is None or count > 0:
                # Someone is in a room — or LiveKit did not answer, and then nobody can tell that the
                # rooms are empty: never stop a stack that may be carrying a call.
                self._last_activity = time.monotonic()
                continue
            log.info("on-demand: idle for %.0f s with nobody in a room; stopping the stack", timeout)
            asyncio.create_task(self.stop(), name="idle-stop")  # noqa: RUF006 - stop() cancels this task
            return

    # -- state and status -----------------------------------------------------------------------------
    def _fail(self, error: LinkprontoError) -> None:
        self._failure = error
        self._set_state(StackState.FAILED, error.text)

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
        """The **Status** document in ``lang``."""
        r = self.proofs.latest
        media = r.media if r is not None else None
        tunnel = self.tunnel
        if tunnel is not None:
            st = tunnel.describe()
            tunnel_info = schema.TunnelInfo(
                provider=st.provider,
                state=st.state,
                public_url=st.public_url,
                detail=st.detail.get(lang),
                last_error=_problem(st.last_error, lang),
                reconnects=st.reconnects,
                since=st.since,
                tradeoff=st.tradeoff.get(lang) if st.tradeoff else None,
            )
        else:
            tunnel_info = schema.TunnelInfo(provider=self.settings.tunnel.provider, state=PartState.STOPPED)
        decision = self._evaluate()
        usable = self.proofs.current() is not None
        return schema.Status(
            state=self.state,
            since=self.since,
            reason=self._reason.get(lang),
            mode=self.settings.stack.mode,
            public_url=self.public_url,
            livekit_url=self.livekit_browser_url,
            admin_url=self.admin_url,
            tunnel=tunnel_info,
            components={name: st.to_schema(lang) for name, st in self._components().items()},
            verification=schema.Verification(
                ok=bool(r and r.ok and usable),
                stale=self.proofs.stale,
                checked_at=datetime.fromtimestamp(r.wall_time, tz=UTC) if r else None,
                age_s=round(time.monotonic() - r.checked_at, 2) if r else None,
                checks=[schema.Check.model_validate(c.to_json(lang)) for c in r.checks] if r else [],
            ),
            media=schema.Media(reach=media.reach, detail=media.why.get(lang)) if media else schema.Media(),
            problems=[schema.Problem.model_validate(e.to_problem(lang))
                      for e in [*decision.problems, *self.events.problems(),
                                *(p for source in self.side_problems for p in source())]],
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


def _problem(err: LinkprontoError | None, lang: Lang | None) -> schema.Problem | None:
    return schema.Problem.model_validate(err.to_problem(lang)) if err is not None else None
