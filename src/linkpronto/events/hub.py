"""The events hub: LiveKit webhooks in, presence changes out (SSE listeners and app callbacks).

Callbacks to ``app.events_url`` (when set): each presence change is POSTed as JSON with

- ``X-Linkpronto-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<exact body>">`` (Stripe's
  signed-timestamp scheme: the app checks the MAC and that ``t`` is within :data:`TOLERANCE_S` of its
  clock, so a captured request cannot be replayed later; :func:`verify_signature` is the reference) — the key is
  ``app.events_secret``, else one derived from the install's own secret (the deployment's, with
  ``serve``: the same on every instance), handed to a supervised app as ``LINKPRONTO_EVENTS_SECRET``
  and printed by ``linkpronto env``;
- ``Idempotency-Key: evt_…`` — the same value as the body's ``id``; a retry carries the same key and
  the same body, so the app can drop what it already processed.

Delivery is at least once: events wait in the store's ``event_outbox`` (written in the same
transaction as the presence change) until the app answers 2xx; failures are retried with capped
exponential back-off (:data:`RETRY_BASE_S` doubling up to :data:`RETRY_CAP_S`, with jitter) for up to
:data:`GIVE_UP_AFTER`. Events of one link are delivered in order: a later one waits while an earlier
one is being retried.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linkpronto.aio import wait_set
from linkpronto.config import Settings
from linkpronto.errors import EventsUndelivered, LinkprontoError, WebhookRejected, WebhookTooLarge
from linkpronto.events import outbox
from linkpronto.events.webhook import (
    MAX_BODY_BYTES,
    RoomEvent,
    shaped_like_livekit,
    signed_by_us,
    verify,
)
from linkpronto.i18n import Text
from linkpronto.links.store import LinkStore
from linkpronto.media import is_probe
from linkpronto.tls import client_context

log = logging.getLogger(__name__)

SECRET_LABEL = b"linkpronto/app-events/v1"
SIGNATURE_HEADER = "X-Linkpronto-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Linkpronto-Event"
RETRY_BASE_S = 0.5
RETRY_CAP_S = 60.0
GIVE_UP_AFTER = timedelta(hours=24)
KEEP_DELIVERED = timedelta(hours=24)
POLL_S = 1.0
SEND_TIMEOUT_S = 10.0
#: Instances sharing a database (PostgreSQL): how often each looks for presence changes another one
#: applied, and how far back.
SHARED_POLL_S = 0.3
SHARED_WINDOW = timedelta(minutes=10)
PUBLISHED_MEMORY = 1024
FAILING_AFTER = 3  # failed attempts in a row before the status shows EVENTS_UNDELIVERED
REFUSAL_LOG_EVERY_S = 60.0  # refused webhooks: one log line, then a summary at most this often


def utcnow() -> datetime:
    return datetime.now(UTC)


TOLERANCE_S = 300  # how far a callback's timestamp may be from the receiver's clock (Stripe: 5 min)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, now: float | None = None) -> str:
    """The ``X-Linkpronto-Signature`` value for ``body`` sent at ``now`` (each retry is signed anew)."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None,
           tolerance_s: float = TOLERANCE_S) -> bool:
    """What a receiving app does: the header parses, one ``v1`` MAC matches, ``t`` is fresh."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if sep:
            parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", []))


def backoff(attempts: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempts`` (1-based): 0.5, 1, 2, 4 … capped at 60, ±20 % jitter."""
    base = min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** max(0, attempts - 1))
    return base * (0.8 + 0.4 * rand())


def load_secret(settings: Settings, instance_secret: bytes) -> str:
    """``app.events_secret``, else a key derived from the instance's (or deployment's) own secret.

    Derived (HMAC-SHA256 of a fixed label) rather than stored: every ``serve`` instance of one
    deployment shares the instance secret through the store, so they all sign with the same key, and
    the key handed to the app reveals nothing of the secret it comes from.
    """
    configured = settings.app.events_secret.get_secret_value()
    if configured:
        return configured
    mac = hmac.new(instance_secret, SECRET_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def secret_from_files(settings: Settings) -> str | None:
    """The events secret as ``linkpronto env`` can know it without the server: configured, or derived
    from ``<data_dir>/secrets.json`` (``up``). None for a ``serve`` deployment without
    ``app.events_secret`` (its secret is in the database)."""
    configured = settings.app.events_secret.get_secret_value()
    if configured:
        return configured
    try:
        doc = json.loads((settings.data_dir / "secrets.json").read_text("utf-8"))
        return load_secret(settings, bytes.fromhex(str(doc["instance_secret"])))
    except (OSError, ValueError, KeyError):
        return None


class Fanout:
    """The queues of the open SSE streams: every document goes to each; one that falls behind loses
    its oldest document rather than holding more than ``maxsize`` or slowing the others."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    def __bool__(self) -> bool:
        return bool(self._queues)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=self.maxsize)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._queues.discard(q)

    def publish(self, doc: dict[str, Any]) -> None:
        for q in list(self._queues):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(doc)


class EventHub:
    def __init__(
        self,
        settings: Settings,
        store: LinkStore,
        keys: Callable[[], tuple[str, str]],
        instance_secret: bytes,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._keys = keys
        self._listeners = Fanout(maxsize=256)
        self._client = client
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._instance_secret = instance_secret
        self._secret: str | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._published: dict[str, None] = {}  # ids of events already given to listeners (bounded)
        self.received = 0
        self.rejected = 0
        self.on_change: Callable[[], None] | None = None  # the stack re-renders its status
        self._rejected_since_ok: tuple[int, str] | None = None  # (count, last reason) since a good one
        self._refused_since_log = 0
        self._last_refusal_log: float | None = None
        self._failing: dict[str, Any] | None = None  # the callback delivery's current trouble

    # -- configuration ------------------------------------------------------------------------------
    @property
    def events_url(self) -> str:
        return self.settings.app.events_url

    @property
    def secret(self) -> str:
        if self._secret is None:
            self._secret = load_secret(self.settings, self._instance_secret)
        return self._secret

    # -- listeners (the SSE stream) -------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        return self._listeners.subscribe()

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._listeners.unsubscribe(q)

    def _publish(self, doc: dict[str, Any]) -> None:
        event_id = str(doc.get("id"))
        if event_id in self._published:
            return
        self._published[event_id] = None
        while len(self._published) > PUBLISHED_MEMORY:
            del self._published[next(iter(self._published))]
        self._listeners.publish(doc)

    # -- webhooks in ------------------------------------------------------------------------------------
    async def handle(self, ev: RoomEvent) -> dict[str, Any] | None:
        """Apply a verified event; returns the presence change it caused (already published), if any."""
        self.received += 1
        if not ev.handled or not ev.room or is_probe(ev.room, ev.identity):
            return None  # a probe room or participant is nobody: no presence, no app event
        change = await self.store.call(outbox.apply_event, self.store, ev, utcnow(), outbox=bool(self.events_url))
        if change is None:
            return None
        log.info("presence %s: %s -> %s", change.doc["link_id"], change.doc["previous"], change.doc["presence"])
        self._publish(change.doc)
        self._wake.set()
        return change.doc

    async def webhook(self, request: Request) -> Response:
        """``POST`` endpoint for LiveKit: 200 when applied (or ignored), 401 when the signature fails.

        Unauthenticated traffic is cheap and quiet (issue 19 finding 7): a request whose token is not
        signed with our key pair is refused before its body is read; refusals are logged once and then
        summarised at most every :data:`REFUSAL_LOG_EVERY_S`; the status changes only when the
        ``WEBHOOK_REJECTED`` warning appears or clears — and only a LiveKit-shaped token (LiveKit signing
        with another key pair, or a body that does not match) raises it: arbitrary junk plants nothing.
        """
        lang = "en" if request.headers.get("accept-language", "").lower().startswith("en") else "pt-BR"
        length = request.headers.get("content-length") or "0"
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return _error(413, WebhookTooLarge(), lang)
        authorization = request.headers.get("authorization", "")
        api_key, api_secret = self._keys()
        if not signed_by_us(authorization, api_key, api_secret):
            # Refused before the body is read. Only a LiveKit-shaped token (another key pair, a wrong
            # secret) is worth the warning; anything else is junk, counted and summarised in the log.
            reason = "invalid signature: not signed with this stack's LiveKit key pair"
            self._refused(reason, ours=shaped_like_livekit(authorization))
            return _error(401, WebhookRejected(reason), lang)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _error(413, WebhookTooLarge(), lang)
        try:
            ev = verify(body, authorization, api_key, api_secret)
        except WebhookRejected as exc:
            self._refused(exc.reason, ours=True)
            return _error(401, exc, lang)
        if self._rejected_since_ok is not None:
            self._rejected_since_ok = None
            self._changed()
        doc = await self.handle(ev)
        return JSONResponse({"ok": True, "presence": doc["presence"] if doc else None})

    def _refused(self, reason: str, *, ours: bool) -> None:
        """Count one refused webhook; log and notify listeners only when it tells something new."""
        self.rejected += 1
        self._refused_since_log += 1
        now = time.monotonic()
        if self._last_refusal_log is None or now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S:
            log.warning("LiveKit webhook refused: %s (%d refused since the last report)", reason,
                        self._refused_since_log)
            self._last_refusal_log, self._refused_since_log = now, 0
        if ours:
            first = self._rejected_since_ok is None
            count = self._rejected_since_ok[0] + 1 if self._rejected_since_ok else 1
            self._rejected_since_ok = (count, reason)
            if first:
                self._changed()

    # -- callbacks out ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start delivering callbacks when ``app.events_url`` is set (and watching other instances)."""
        if self._task is None and self.events_url:
            self._task = asyncio.create_task(self._deliver_loop(), name="events-deliver")
        if self._watch_task is None and not self.store.is_sqlite:
            # Several instances may share this database: a webhook reaches only one of them.
            for _link, _version, doc in await self.store.call(
                outbox.recent_changes, self.store, utcnow() - SHARED_WINDOW
            ):
                self._published[str(doc.get("id"))] = None  # already past: not replayed
            self._watch_task = asyncio.create_task(self._watch_shared(), name="events-shared")

    async def _watch_shared(self) -> None:
        while True:
            try:
                for _link, _version, doc in await self.store.call(
                    outbox.recent_changes, self.store, utcnow() - SHARED_WINDOW
                ):
                    self._publish(doc)
            except asyncio.CancelledError:
                raise
            except Exception:  # a lost connection: the store reports it; try again next time
                log.debug("presence watch failed", exc_info=True)
            await asyncio.sleep(SHARED_POLL_S)

    async def aclose(self) -> None:
        for task in (self._task, self._watch_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._watch_task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def poke(self) -> None:
        self._wake.set()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def problems(self) -> list[LinkprontoError]:
        """What the status should say about events: webhooks refused, callbacks not getting through."""
        out: list[LinkprontoError] = []
        if self._rejected_since_ok is not None:
            _count, reason = self._rejected_since_ok
            # No live count in the text: the status document (and every dashboard stream) changes only
            # when the warning appears or clears, however many refusals arrive.
            out.append(WebhookRejected(
                reason,
                message=Text("Webhooks do LiveKit recusados: assinatura inválida (outra chave, ou conteúdo que não "
                             "confere). A presença do paciente (\"está esperando\") não será mostrada.",
                             "LiveKit webhooks refused: invalid signature (another key, or content that does not "
                             "match). The patient's presence (\"is waiting\") will not show."),
            ))
        if self._failing is not None and (self._failing["attempts"] >= FAILING_AFTER or self._failing["gave_up"]):
            out.append(EventsUndelivered.to(str(self.events_url), self._failing["error"]))
        return out

    async def _deliver_loop(self) -> None:
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.deliver_due()
                if loop.time() - last_purge > 600:
                    last_purge = loop.time()
                    await self.store.call(outbox.purge, self.store, utcnow() - KEEP_DELIVERED)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive a database hiccup; it tries again
                log.exception("event delivery pass failed")
            await wait_set(self._wake, POLL_S)
            self._wake.clear()

    async def deliver_due(self) -> int:
        """One pass: send every due event (per link in order). Returns how many were delivered."""
        items = await self.store.call(outbox.pending, self.store)
        blocked: set[str] = set()
        sent = 0
        for item in items:
            if item.link_id in blocked:
                continue
            now = utcnow()
            if item.next_attempt_at > now:
                blocked.add(item.link_id)  # an earlier event of this link waits: keep the order
                continue
            if not await self.store.call(outbox.claim, self.store, item, now):
                blocked.add(item.link_id)
                continue
            ok = await self._send(item)
            if ok:
                sent += 1
            else:
                blocked.add(item.link_id)
        return sent

    async def _send(self, item: outbox.Pending) -> bool:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=SEND_TIMEOUT_S, verify=client_context())
        body = item.payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            IDEMPOTENCY_HEADER: item.id,
            EVENT_HEADER: "link.presence",
            "User-Agent": "linkpronto-events",
        }
        error = ""
        try:
            res = await self._client.post(self.events_url, content=body, headers=headers)
            if 200 <= res.status_code < 300:
                await self.store.call(outbox.delivered, self.store, item.id, utcnow())
                if self._failing is not None:
                    self._failing = None
                    self._changed()
                return True
            error = f"HTTP {res.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = item.attempts + 1
        now = utcnow()
        retry_at: datetime | None = now + timedelta(seconds=backoff(attempts))
        if now - item.created_at > GIVE_UP_AFTER:
            retry_at = None
            log.error("event %s not delivered after %d attempts (%s); giving up", item.id, attempts, error)
        else:
            log.warning("event %s delivery failed (%s); attempt %d, retrying", item.id, error, attempts)
        await self.store.call(outbox.failed, self.store, item.id, attempts=attempts, retry_at=retry_at,
                              error=error, now=now)
        first = self._failing is None
        self._failing = {"attempts": attempts, "error": error, "gave_up": retry_at is None}
        if first or retry_at is None:
            self._changed()
        if retry_at is not None:
            delay = (retry_at - now).total_seconds()
            asyncio.get_running_loop().call_later(delay, self._wake.set)
        return False


def _error(status: int, err: LinkprontoError, lang: str) -> JSONResponse:
    """``{error: {code, message, fix}}`` — never the ``detail`` (a refused webhook's reason is for the log)."""
    lg: Any = lang
    body = {"error": {"code": err.code, "message": err.message(lg), "fix": err.fix(lg)}}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def presence_sse(doc: dict[str, Any]) -> bytes:
    return ("event: presence\ndata: " + json.dumps(doc, separators=(",", ":")) + "\n\n").encode("utf-8")


async def next_presence(
    presence: asyncio.Queue[dict[str, Any]], status: asyncio.Queue[dict[str, Any]], timeout: float  # noqa: ASYNC109
) -> dict[str, Any] | None:
    """Wait for whichever comes first: a presence change (returned), a status change or ``timeout`` (None)."""
    if not presence.empty():
        return presence.get_nowait()
    p = asyncio.ensure_future(presence.get())
    s = asyncio.ensure_future(status.get())
    try:
        done, _ = await asyncio.wait({p, s}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (p, s):
            if not fut.done():
                fut.cancel()
    if p in done:
        if s in done:  # both came: put the status trigger back so it is not lost
            with contextlib.suppress(asyncio.QueueFull):
                status.put_nowait(s.result())
        return p.result()
    return None
