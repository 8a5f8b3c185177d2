"""The stack: LiveKit, the tunnel and the user's app composed into one state machine.

::

    stopped ──start──> starting ──all components up──> verifying ──ladder ok──> ready
                          ^                                 │                      │
                          │                                 └──── ladder fails ────┤
                          └──── component down / ladder fails / URL changed ───> degraded
    any component that cannot recover unattended (crash loop, bad keys, no binary) ──> failed

One background task evaluates the state whenever a component, the tunnel or a request pokes it, and
at least every ``verify.interval``. Links wait in ``preparing`` until a ladder run passes; then
every preparing link becomes ``ready`` with the public address that was just proven.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from linkpronto.components import Component, ComponentState, ComponentStatus, iso, utcnow
from linkpronto.config import Settings
from linkpronto.errors import (
    LinkprontoError,
    TunnelError,
    TunnelUrlChanged,
    VerifyFailed,
)
from linkpronto.i18n import Lang, Text
from linkpronto.keys import InstanceSecrets
from linkpronto.links.service import Credentials, LinkService, Proof
from linkpronto.links.store import LinkRow, LinkStore
from linkpronto.livekit.local import check_livekit_keys
from linkpronto.livekit.remote import RemoteLivekit, RoomAdmin, ws_base
from linkpronto.verify import Ladder, LadderInput, LadderResult, assess_media

if TYPE_CHECKING:
    from linkpronto.tunnels.base import TunnelEvent, TunnelProvider

log = logging.getLogger(__name__)

STATUS_HEARTBEAT_S = 15.0
TUNNEL_RETRY_INITIAL_S = 1.0
TUNNEL_RETRY_MAX_S = 30.0


class StackState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    VERIFYING = "verifying"
    READY = "ready"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass
class _Event:
    """A problem worth showing for a while even though it is no longer current (e.g. URL changed)."""

    error: LinkprontoError
    at: float = field(default_factory=time.monotonic)


class Stack:
    def __init__(
        self,
        settings: Settings,
        secrets: InstanceSecrets,
        store: LinkStore,
        *,
        admin_url: str,
        livekit: Component | None = None,
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
        self.livekit: Component | None = None
        self.tunnel: TunnelProvider | None = None
        self.app: Component | None = None
        self.state = StackState.STOPPED
        self.since = utcnow()
        self.reason = ""
        self._failure: LinkprontoError | None = None
        self._events: list[_Event] = []
        self._result: LadderResult | None = None
        self._proof_cache: tuple[LadderResult, Proof] | None = None
        self._invalidated_at = 0.0
        self._wake = asyncio.Event()
        self._verified = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._tunnel_task: asyncio.Task[None] | None = None
        self._livekit_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._app_restart: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._app_unwatch: Callable[[], None] | None = None
        self._status_listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._last_status_key = ""
        self._client = httpx.AsyncClient(http2=False)
        self._ladder = Ladder(self._client)
        self._ladder_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._last_activity = time.monotonic()
        self.links = LinkService(
            store,
            secrets,
            link_path=settings.app.link_path,
            default_ttl_s=settings.links.default_ttl,
            default_max_uses=settings.links.max_uses,
            join_token_ttl_s=settings.links.join_token_ttl,
            public_base=lambda: self.public_url,
            credentials=self.credentials,
            remove_participants=self._remove_participants,
        )

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
        """What a browser connects to: the public origin (``/rtc`` is proxied) or LiveKit Cloud."""
        if self.settings.livekit.mode == "cloud":
            return self.settings.livekit.url or None
        return ws_base(self.public_url) if self.public_url else None

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
        r = self._result
        return bool(
            r is not None
            and r.ok
            and r.checked_at > self._invalidated_at
            and time.monotonic() - r.checked_at <= self.settings.verify.max_age
            and self.state in (StackState.READY, StackState.VERIFYING, StackState.DEGRADED)
        )

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
            loop = asyncio.get_running_loop()

            def store_changed() -> None:  # called from a database thread
                loop.call_soon_threadsafe(self.poke)

            self.store.on_change = store_changed
            self._set_state(StackState.STARTING, "starting components")
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

    async def _start_livekit(self, livekit: Component) -> None:
        try:
            await livekit.start()
        except LinkprontoError as exc:
            self._fail(exc)

    async def stop(self) -> None:
        async with self._start_lock:
            for task in (self._idle_task, self._livekit_task, self._tunnel_task, self._app_restart, self._task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self._idle_task = self._livekit_task = self._tunnel_task = self._app_restart = self._task = None
            for unsub in self._unsubscribe:
                unsub()
            self._unsubscribe.clear()
            self._app_unwatch = None
            if self.app is not None:
                await self.app.stop()
                self.app = None
            if self.tunnel is not None:
                with contextlib.suppress(LinkprontoError):
                    await self.tunnel.close()
            if self.livekit is not None:
                await self.livekit.stop()
                self.livekit = None
            self._result = None
            self._set_state(StackState.STOPPED, "")

    async def aclose(self) -> None:
        await self.stop()
        await self._client.aclose()

    def poke(self) -> None:
        """Something changed: re-evaluate soon."""
        self._wake.set()

    def invalidate(self) -> None:
        self._invalidated_at = time.monotonic()
        self.poke()

    # -- building components -----------------------------------------------------------------------
    def _build_livekit(self) -> Component:
        lk = self.settings.livekit
        if lk.mode == "local":
            from linkpronto.livekit.local import LocalLivekit

            return LocalLivekit(
                self.settings,
                api_key=self.api_key,
                api_secret=self._api_secret,
                install_allowed=self.install_allowed,
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

    def _build_app(self, restarts: int = 0) -> Component | None:
        """The user's app as a supervised process, with the CURRENT public URL in its environment.

        ``restarts`` carries the count over when the app is rebuilt for a new public URL, so the status
        shows that it was restarted.
        """
        app = self.settings.app
        if not app.command:
            return None
        from linkpronto.supervise import ManagedProcess
        from linkpronto.supervise.spec import ProcessSpec, RestartPolicy, TcpProbe

        env = {
            "NEXT_PUBLIC_SITE_URL": self.public_url or "",
            "NEXT_PUBLIC_LIVEKIT_URL": self.livekit_browser_url or "",
            "LINKPRONTO_ADMIN_URL": self.admin_url,
            "LINKPRONTO_ADMIN_TOKEN": self.secrets.admin_token,
            "LINKPRONTO_PUBLIC_URL": self.public_url or "",
        }
        if app.port:
            env["PORT"] = str(app.port)
        spec = ProcessSpec(
            name="app",
            argv=tuple(app.argv()),
            env=env,
            cwd=app.cwd,
            readiness=TcpProbe("127.0.0.1", app.port, period_s=0.2, timeout_s=1.0) if app.port else None,
            restart=RestartPolicy(),
            start_timeout_s=120.0,
            error_code="APP_CRASH_LOOP",
            port=app.port or None,
            redact=(self.secrets.admin_token,),
        )
        process = ManagedProcess(spec)
        process.restarts = restarts
        return process

    def _watch(self, comp: Component) -> Callable[[], None]:
        def changed() -> None:
            st = comp.status()
            if not st.state.is_up:
                self.invalidate()
            else:
                self.poke()

        unsubscribe = comp.subscribe(changed)
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
                recoverable = exc.code == "TUNNEL_UNREACHABLE"
                self.poke()
                if not recoverable:
                    self._fail(exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, TUNNEL_RETRY_MAX_S)
                continue
            break
        self.invalidate()
        await self._start_app()

    def _on_tunnel_event(self, event: TunnelEvent) -> None:
        from linkpronto.tunnels.base import TunnelEventKind

        if event.kind is TunnelEventKind.URL_CHANGED:
            err = TunnelUrlChanged(
                Text(
                    f"O endereço público mudou de {event.old_url} para {event.url}. Links já enviados "
                    "com o endereço antigo estão marcados para reenviar.",
                    f"The public address changed from {event.old_url} to {event.url}. Links already "
                    "sent with the old address are flagged for resending.",
                ),
                fix=Text(
                    "Reenvie os links marcados, ou use um endereço fixo (domínio do ngrok, túnel "
                    "nomeado do cloudflared ou ssh para o seu VPS).",
                    "Resend the flagged links, or use a fixed address (ngrok domain, named cloudflared "
                    "tunnel or ssh to your VPS).",
                ),
            )
            log.warning("TUNNEL_URL_CHANGED old=%s new=%s", event.old_url, event.url)
            self._events.append(_Event(err))
            del self._events[:-10]
            if self.settings.app.restart_on_url_change and (self.app is not None or self._app_restart is not None):
                # Detach the app now, synchronously: from this moment it counts as down, so no ladder
                # run that starts later can prove the stack while the app still has the old URL.
                old, self.app = self.app, None
                self._app_restart = asyncio.create_task(
                    self._restart_app(old, self._app_restart), name="app-restart"
                )
        self.invalidate()

    # -- the app -------------------------------------------------------------------------------------
    async def _start_app(self, restarts: int = 0) -> None:
        if self.app is not None or not self.settings.app.command:
            return
        try:
            app = self.app = self._build_app(restarts)
        except LinkprontoError as exc:
            self._fail(exc)
            return
        if app is None:
            return
        if self._app_unwatch is not None:  # the previous app (before a restart) is no longer watched
            self._app_unwatch()
            if self._app_unwatch in self._unsubscribe:
                self._unsubscribe.remove(self._app_unwatch)
        self._app_unwatch = self._watch(app)
        try:
            await app.start()
        except LinkprontoError:
            # PORT_IN_USE, a missing program...: the component is FAILED and holds the error, which
            # the evaluation loop turns into the stack's failure (with the holder / the command named).
            self.poke()

    async def _restart_app(self, old: Component | None, previous: asyncio.Task[None] | None) -> None:
        """Stop the app started with the old public URL, then start it again with the new one.

        One restart at a time: a URL change during a restart waits for the previous one (whose app
        is then ``old``). When ``stop()`` cancels this task, the old app is still stopped completely
        (cancelling ``previous`` with us), so nothing outlives the stack.
        """
        if previous is not None and not previous.done():
            await previous
        restarts = 0
        if old is not None:
            restarts = old.status().restarts + 1
            try:
                await old.stop()
            except asyncio.CancelledError:
                await old.stop()
                raise
        await self._start_app(restarts)

    # -- evaluation ----------------------------------------------------------------------------------
    def _components(self) -> dict[str, ComponentStatus]:
        out: dict[str, ComponentStatus] = {}
        if self.livekit is not None:
            out["livekit"] = self.livekit.status()
        if self.tunnel is not None:
            out["tunnel"] = _tunnel_component(self.tunnel)
        if self.app is not None:
            out["app"] = self.app.status()
        out["store"] = self.store.status()
        return out

    def _all_up(self) -> tuple[bool, str]:
        comps = self._components()
        needed = ["store", "livekit", "tunnel"] + (["app"] if self.settings.app.command else [])
        for name in needed:
            st = comps.get(name)
            if st is None or not st.state.is_up:
                return False, f"{name}: {st.detail or st.state.value}" if st else f"{name}: not started"
        return True, ""

    def _component_failure(self) -> LinkprontoError | None:
        for st in self._components().values():
            if st.state is ComponentState.FAILED and st.error is not None:
                return st.error
        return None

    async def _loop(self) -> None:
        interval = self.settings.verify.interval
        while True:
            try:
                await self._evaluate()
            except Exception:  # the loop must survive anything; the state says what went wrong
                log.exception("stack evaluation failed")
            self._publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(interval, STATUS_HEARTBEAT_S))
            self._wake.clear()

    async def _evaluate(self) -> None:
        if self.state is StackState.FAILED and self._failure is not None:
            return
        failure = self._component_failure()
        if failure is not None:
            self._fail(failure)
            return
        if self.store.failure is not None and not await self.store.call(self.store.ping):
            # The database is down: degraded (links cannot be issued or joined) until it answers.
            asyncio.get_running_loop().call_later(1.0, self.poke)
        up, why = self._all_up()
        was_ready = self.state in (StackState.READY, StackState.DEGRADED)
        if not up:
            self._set_state(StackState.DEGRADED if was_ready else StackState.STARTING, why)
            return
        stale = (
            self._result is None
            or self._result.checked_at <= self._invalidated_at
            or time.monotonic() - self._result.checked_at >= self.settings.verify.interval
            or not self._result.ok
        )
        if stale:
            if not was_ready:
                self._set_state(StackState.VERIFYING, "running the verification ladder")
            await self.run_ladder()
        assert self._result is not None
        if self._result.ok and self._result.checked_at <= self._invalidated_at:
            self.poke()  # something changed while the ladder ran: prove it again
        elif self._result.ok:
            self._set_state(StackState.READY, "")
        else:
            bad = self._result.first_failure()
            why = f"{bad.name}: {bad.detail}" if bad else "verification failed"
            self._set_state(StackState.DEGRADED if was_ready else StackState.VERIFYING, why)
            # Retry soon rather than waiting for the full interval.
            asyncio.get_running_loop().call_later(1.0, self.poke)

    async def run_ladder(self) -> LadderResult:
        async with self._ladder_lock:
            inp = self._ladder_input()
            result = await self._ladder.run(inp)
            self._result = result
            # A component event during the run (URL change, a crash) leaves the result stale: no
            # link is promoted on it, and the next evaluation runs the ladder again.
            if result.ok and result.checked_at > self._invalidated_at:
                await self._promote_preparing(result)
            async with self._verified:
                self._verified.notify_all()
            return result

    def _ladder_input(self) -> LadderInput:
        lk = self.settings.livekit
        t = self.settings.tunnel
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
            app_health_path=self.settings.app.health_path,
            link_path=self.settings.app.link_path,
            media=assess_media(
                livekit_mode=lk.mode,
                node_ip=node_ip,
                turn_url=lk.turn_url,
                ssh_forward_media=t.ssh_forward_media,
                tunnel_provider=self.tunnel.name if self.tunnel else t.provider,
            ),
        )

    def _proof(self) -> Proof | None:
        """The current verification as a :class:`Proof`, cached per ladder run (JSON made once)."""
        r, base = self._result, self.public_url
        if r is None or base is None:
            return None
        cached = self._proof_cache
        if cached is not None and cached[0] is r and cached[1].base_url == base:
            return cached[1]
        proof = Proof(utcnow(), base, json.dumps([c.to_json() for c in r.checks]))
        self._proof_cache = (r, proof)
        return proof

    async def _promote_preparing(self, result: LadderResult) -> None:
        base = self.public_url
        if base is None:
            return
        checks = [c.to_json() for c in result.checks]
        ids = await self.store.call(self.store.preparing_ids)
        if ids:
            await self.store.call(
                self.store.mark_ready, ids, verified_at=utcnow(), base_url=base, checks=checks
            )

    # -- links ---------------------------------------------------------------------------------------
    async def create_link(
        self,
        *,
        professional_id: str,
        client_id: str | None,
        consultation_type: str | None,
        expires_in_s: float | None,
        max_uses: int | None,
        wait_s: float,
    ) -> tuple[LinkRow, str]:
        """Issue a link; it is ``ready`` on return when the stack proved itself within ``wait_s``."""
        self._last_activity = time.monotonic()
        if self.state is StackState.FAILED and self._failure is not None:
            raise self._failure
        if self.state is StackState.STOPPED:
            await self.start()
        proof = self._proof() if self.verification_fresh() else None
        row, token = await self.store.call(
            self.links.create,
            professional_id=professional_id,
            client_id=client_id,
            consultation_type=consultation_type,
            expires_in_s=expires_in_s,
            max_uses=max_uses,
            proven=proof,
        )
        if proof is not None:
            return row, token
        if wait_s > 0:
            self.poke()
            deadline = time.monotonic() + wait_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                async with self._verified:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._verified.wait(), remaining)
                current = await self.store.call(self.links.get, row.id)
                if current.verified_at is not None:
                    return current, token
                if self.state is StackState.FAILED:
                    break
        return await self.store.call(self.links.get, row.id), token

    async def _remove_participants(self, room: str) -> int:
        admin = self.room_admin()
        return await admin.remove_all(room) if admin else 0

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
            count = await admin.total_participants() if admin else None
            if count:
                self._last_activity = time.monotonic()
                continue
            log.info("on-demand: idle for %.0f s with nobody in a room; stopping the stack", timeout)
            asyncio.create_task(self.stop(), name="idle-stop")  # noqa: RUF006 - stop() cancels this task
            return

    # -- state and status -----------------------------------------------------------------------------
    def _fail(self, error: LinkprontoError) -> None:
        self._failure = error
        self._set_state(StackState.FAILED, error.message())

    def _set_state(self, state: StackState, reason: str) -> None:
        if state is not self.state:
            log.info("stack %s -> %s %s", self.state.value, state.value, reason)
            self.state = state
            self.since = utcnow()
        self.reason = reason
        self._publish()

    def problems(self, lang: Lang | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._failure is not None:
            out.append(self._failure.to_problem(lang))
        # Component errors (the tunnel's last error included: _tunnel_component carries it).
        for st in self._components().values():
            if st.error is not None and st.error is not self._failure:
                out.append(st.error.to_problem(lang))
        r = self._result
        if r is not None and not r.ok and (bad := r.first_failure()) is not None:
            out.append(
                VerifyFailed(
                    Text(
                        f"Verificação '{bad.name}' falhou: {bad.detail}",
                        f"Check '{bad.name}' failed: {bad.detail}",
                    ),
                    fix=bad.fix,
                ).to_problem(lang)
            )
        if r is not None:
            media = next((c for c in r.checks if c.name == "media"), None)
            if media is not None and not media.ok and media.detail.startswith("same-network"):
                from linkpronto.errors import MediaSameNetworkOnly

                out.append(
                    MediaSameNetworkOnly(
                        Text(
                            "Só aparelhos nesta mesma rede (Wi-Fi) terão vídeo.",
                            "Only devices on this same network (Wi-Fi) will get video.",
                        ),
                        fix=media.fix,
                    ).to_problem(lang)
                )
        if self.tunnel is not None and not self.tunnel.https and self.public_url:
            out.append(
                {
                    "code": "INSECURE_ORIGIN",
                    "message": Text(
                        "O endereço público não é HTTPS: celulares não liberam câmera e microfone.",
                        "The public address is not HTTPS: phones will not allow camera and microphone.",
                    ).get(lang),
                    "fix": Text(
                        "Use um túnel HTTPS (cloudflared, ngrok) ou um domínio com certificado.",
                        "Use an HTTPS tunnel (cloudflared, ngrok) or a domain with a certificate.",
                    ).get(lang),
                }
            )
        horizon = time.monotonic() - 600
        out.extend(e.error.to_problem(lang) for e in self._events if e.at >= horizon)
        return out

    def status_json(self, lang: Lang | None = None) -> dict[str, Any]:
        r = self._result
        media_check = next((c for c in r.checks if c.name == "media"), None) if r else None
        reach, _, detail = media_check.detail.partition(": ") if media_check else ("unknown", "", "")
        tunnel_json = (
            self.tunnel.describe().to_json(lang)
            if self.tunnel is not None
            else {
                "provider": self.settings.tunnel.provider,
                "state": "closed",
                "public_url": None,
                "detail": "",
            }
        )
        return {
            "state": self.state.value,
            "since": iso(self.since),
            "reason": self.reason,
            "mode": self.settings.stack.mode,
            "public_url": self.public_url,
            "livekit_url": self.livekit_browser_url,
            "admin_url": self.admin_url,
            "tunnel": tunnel_json,
            "components": {k: v.to_json() for k, v in self._components().items()},
            "verification": {
                "ok": bool(r and r.ok and r.checked_at > self._invalidated_at),
                # Results from before the last component event: shown, but no longer proof.
                "stale": bool(r and r.checked_at <= self._invalidated_at),
                "checked_at": iso(datetime.fromtimestamp(r.wall_time, tz=utcnow().tzinfo)) if r else None,
                "age_s": round(time.monotonic() - r.checked_at, 2) if r else None,
                "checks": [c.to_json() for c in r.checks] if r else [],
            },
            "media": {"reach": reach or "unknown", "detail": detail},
            "problems": self.problems(lang),
        }

    def subscribe_status(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=64)
        self._status_listeners.add(q)
        return q

    def unsubscribe_status(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._status_listeners.discard(q)

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
        for q in list(self._status_listeners):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(doc)


def _tunnel_component(tunnel: TunnelProvider) -> ComponentStatus:
    from linkpronto.tunnels.base import TunnelState

    st = tunnel.describe()
    mapping = {
        TunnelState.OPEN: ComponentState.READY,
        TunnelState.OPENING: ComponentState.STARTING,
        TunnelState.RECONNECTING: ComponentState.RESTARTING,
        TunnelState.DISCONNECTED: ComponentState.UNHEALTHY,
        TunnelState.FAILED: ComponentState.UNHEALTHY,
        TunnelState.CLOSED: ComponentState.STOPPED,
    }
    detail = st.detail or (st.public_url or "")
    return ComponentStatus(
        state=mapping[st.state],
        detail=f"{st.provider}: {detail}" if detail else st.provider,
        pid=None,
        restarts=st.reconnects,
        since=st.since,
        error=st.last_error,
    )
