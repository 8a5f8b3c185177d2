"""Operations on consultation links, independent of HTTP.

The service issues links (token from :mod:`secrets`, stored hashed and encrypted), renders the
contract's **Link** document, counts joins atomically and mints the patient's LiveKit token. What
it needs from the running stack — the current public base URL, the LiveKit URL the browser should
use, LiveKit credentials and a way to remove a room's participants — comes in as callables, so the
service knows nothing about tunnels or processes.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import segno
from sqlalchemy.exc import DBAPIError

from linkpronto import keys, schema
from linkpronto.components import iso
from linkpronto.errors import LinkGone, LinkNotFound, LinkprontoError, LivekitRoomNotCreated, LivekitUnhealthy
from linkpronto.events.presence import Presence
from linkpronto.i18n import Lang, Text, render
from linkpronto.links.inputs import decode_stored
from linkpronto.links.revocations import Revocations
from linkpronto.links.store import LinkRow, LinkStore, StoredStatus
from linkpronto.livekit import tokens

LinkStatus = schema.LinkStatus  # preparing, ready, expired, revoked, exhausted (CONTRACT.md)
W = TypeVar("W")


class StorageWatch(Protocol):
    def refuse_writes(self) -> LinkprontoError | None: ...

    def write_failed(self, exc: BaseException) -> LinkprontoError: ...

    def write_ok(self) -> None: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JoinGrant:
    livekit_url: str
    access_token: str
    room: str
    identity: str
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "livekit_url": self.livekit_url,
            "access_token": self.access_token,
            "room": self.room,
            "identity": self.identity,
            "expires_at": iso(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class Proof:
    """A verification that passed: links issued under it are ready as they are created."""

    verified_at: datetime
    base_url: str
    checks_json: str


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str
    livekit_url: str  # what a browser connects to (same-origin wss:// or the cloud URL)


SHORT_MESSAGE = Text(
    "Olá! Este é o link da sua consulta online: {url}\nAbra no celular ou computador e permita câmera e microfone.",
    "Hello! Here is the link to your online consultation: {url}\nOpen it on your phone or computer and allow "
    "camera and microphone.",
)


@lru_cache(maxsize=256)
def qr_svg(url: str) -> str:
    """The QR code of ``url`` as inline SVG markup, made locally (the link never leaves the machine)."""
    qr = segno.make_qr(url, error="m", mask=0)
    return str(qr.svg_inline(scale=4, border=2, title="QR"))


def qr_data_uri(url: str) -> str:
    qr = segno.make_qr(url, error="m", mask=0)
    return str(qr.svg_data_uri(scale=4, border=2))


class PreparedTokens:
    """Link tokens made ahead of time with the QR code of their URL, so "Gerar link" does not wait for one.

    Rendering a QR code (segno, pure Python) costs 2-3 ms of CPU per URL, the largest part of a drop-in
    create. The drop-in takes a token made earlier for the current URL template (public base + link
    path) with its ``data:image/svg+xml`` QR ready, and asks for the pool to be refilled after its answer
    went out. A token is handed out once (popped), lives only in this process's memory until a link is
    stored with it, and a pool made for another template (a new public URL) is thrown away: the QR
    always encodes the URL the answer carries (the caller checks, and renders inline otherwise).
    """

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._template: str | None = None
        self._ready: deque[tuple[str, str]] = deque()  # (token, QR data URI) for self._template

    @staticmethod
    def url(template: str, token: str) -> str:
        return template.replace("{token}", token)

    def take(self, template: str | None) -> tuple[str, str | None]:
        """A fresh token and, when one was prepared for ``template``, the QR of its URL."""
        with self._lock:
            if template is not None and template == self._template and self._ready:
                return self._ready.popleft()
        return keys.new_token(), None

    def fill(self, template: str | None) -> None:
        """Top the pool up for ``template`` (run off the request path: a background task)."""
        if template is None:
            return
        while True:
            with self._lock:
                if template != self._template:
                    self._template, self._ready = template, deque()
                if len(self._ready) >= self.size:
                    return
            token = keys.new_token()
            qr = qr_data_uri(self.url(template, token))
            with self._lock:
                if template == self._template:
                    self._ready.append((token, qr))


def whatsapp_url(url: str, lang: Lang | None = None, text: str | None = None) -> str:
    text = SHORT_MESSAGE.format(url=url).get(lang) if text is None else text
    return "https://wa.me/?text=" + urllib.parse.quote(text)


_log = logging.getLogger("linkpronto.links")


def room_not_created(refusal: str) -> LivekitRoomNotCreated:
    """LiveKit (``room.auto_create: false``) refused to create the room: say why, and how to fix it."""
    return LivekitRoomNotCreated(
        Text(
            "O servidor de vídeo não permitiu criar a sala da consulta. Seu link continua válido.",
            "The video server did not allow the consultation room to be created. Your link is still valid.",
        ),
        fix=Text(
            "Quem cuida do LiveKit: com room.auto_create desligado, a chave do linkpronto "
            "(LIVEKIT_API_KEY) precisa poder criar salas (roomCreate), ou ligue room.auto_create.",
            "Whoever runs LiveKit: with room.auto_create off, linkpronto's key (LIVEKIT_API_KEY) must "
            "be allowed to create rooms (roomCreate), or turn room.auto_create on.",
        ),
        detail=f"CreateRoom: {refusal}"[:300],
    )


def short_message(url: str, lang: Lang | None, template: str | None = None, *, name: str = "",
                  consultation_type: str = "") -> str:
    """The message sent with a link: the app's own template (``{url}``, ``{name}``, ``{type}``; other
    braces kept as written) or linkpronto's sentence."""
    if not template:
        return SHORT_MESSAGE.format(url=url).get(lang)
    values = {"url": url, "name": name, "type": consultation_type}
    return re.sub(r"\{(url|name|type)\}", lambda m: values[m.group(1)], template)


def livekit_unreachable() -> LivekitUnhealthy:
    """The patient-facing 503: retryable, nothing used up."""
    return LivekitUnhealthy(
        Text(
            "O servidor de vídeo não está respondendo agora. Seu link continua válido.",
            "The video server is not answering right now. Your link is still valid.",
        ),
        fix=Text(
            "Aguarde alguns segundos e toque em 'Tentar de novo'.",
            "Wait a few seconds and tap 'Try again'.",
        ),
    )


_CHECK_FIELDS = frozenset(schema.Check.model_fields)


def _render_check(check: dict[str, Any], lang: Lang | None) -> dict[str, Any]:
    """A check stored with both languages (``{"pt-BR", "en"}``), or a plain string from 0.1.0, in ``lang``
    (only the contract's fields: a key an older version stored is not part of the wire)."""
    kept = {k: v for k, v in check.items() if k in _CHECK_FIELDS}
    return {**kept, "detail": render(check.get("detail"), lang) or "", "fix": render(check.get("fix"), lang)}


def _checks(text: str | None) -> list[dict[str, Any]]:
    stored = decode_stored(text)
    return [c for c in stored if isinstance(c, dict)] if isinstance(stored, list) else []


class LinkService:
    def __init__(
        self,
        store: LinkStore,
        secrets_: keys.InstanceSecrets,
        *,
        link_path: str,
        default_ttl_s: float,
        default_max_uses: int,
        join_token_ttl_s: float,
        public_base: Callable[[], str | None],
        credentials: Callable[[], Credentials | None],
        remove_participants: Callable[[str], Awaitable[int]] | None = None,
        livekit_answers: Callable[[], Awaitable[bool]] | None = None,
        clock: Callable[[], datetime] = utcnow,
        ensure_room: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self.store = store
        self.secrets = secrets_
        self.link_path = link_path
        self.default_ttl_s = default_ttl_s
        self.default_max_uses = default_max_uses
        self.join_token_ttl_s = join_token_ttl_s
        self.public_base = public_base
        self.credentials = credentials
        self.remove_participants = remove_participants
        self.livekit_answers = livekit_answers
        self.clock = clock
        #: CreateRoom before a join (LiveKit with room.auto_create false); returns LiveKit's refusal or None.
        self.ensure_room = ensure_room
        #: The database's health (``links.health.StoreHealth``): writes refused on a full disk.
        self.storage: StorageWatch | None = None
        #: Rooms of revoked links (in the store, shared by every instance) → refused by the gateway.
        self.revocations = Revocations(store, lambda: self.clock())
        #: Tokens made ahead with their QR code (the drop-in's answer carries one).
        self.prepared = PreparedTokens()

    # -- documents ------------------------------------------------------------------------------
    def status_of(self, row: LinkRow, now: datetime | None = None) -> str:
        now = now or self.clock()
        if row.status in (StoredStatus.REVOKED.value, StoredStatus.FAILED.value):
            # Nothing stores "failed" since 0.2.0 (a link that cannot be verified stays preparing);
            # a row from before reads as revoked: it was never handed out.
            return LinkStatus.REVOKED
        if row.expires_at <= now:
            return LinkStatus.EXPIRED
        if row.status == StoredStatus.PREPARING.value:
            return LinkStatus.PREPARING
        if row.max_uses and row.uses >= row.max_uses:
            return LinkStatus.EXHAUSTED
        return LinkStatus.READY

    def url_for(self, row: LinkRow, base: str | None = None) -> str | None:
        base = base if base is not None else self.public_base()
        token = self.secrets.decrypt_token(row.token_enc)
        if not base or token is None:
            return None
        return base.rstrip("/") + self.link_path.replace("{token}", token)

    def url_template(self) -> str | None:
        """The URL a link gets, with ``{token}`` still in it; None without a public base."""
        base = self.public_base()
        return base.rstrip("/") + self.link_path if base else None

    def to_schema(self, row: LinkRow, *, lang: Lang | None = None) -> schema.Link:
        """The **Link** document (the wire's model), rendered in ``lang``."""
        now = self.clock()
        base = self.public_base()
        ever_ready = row.verified_at is not None
        url = self.url_for(row, base) if ever_ready else None
        sent_old = bool(ever_ready and row.sent_base_url and base and row.sent_base_url != base)
        presence = Presence(row.presence, row.presence_since, row.waiting_name)
        # One validation of the whole document (checks included): cheaper than a model per check.
        return schema.Link.model_validate({
            "id": row.id,
            "status": LinkStatus(self.status_of(row, now)),
            "url": url,
            "professional_id": row.professional_id,
            "client_id": row.client_id,
            "consultation_type": row.consultation_type,
            "room": row.room,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "max_uses": row.max_uses,
            "uses": row.uses,
            "verified_at": row.verified_at,
            "public_base_url": base if ever_ready else None,
            "sent_base_url": row.sent_base_url,
            "sent_with_old_address": sent_old,
            "checks": [_render_check(c, lang) for c in _checks(row.checks_json)],
            "device_check": decode_stored(row.device_check_json),
            "error": decode_stored(row.failure_json),
            "qr_svg_url": f"/api/consultation-links/{row.id}/qr.svg" if url else None,
            "whatsapp_url": whatsapp_url(url, lang) if url else None,
            # Who is in the room (linkpronto.events): a contract extension; `status` is unchanged.
            "presence": presence.presence,
            "presence_since": presence.since,
            "waiting_name": presence.waiting_name,
        })

    def to_json(self, row: LinkRow, *, lang: Lang | None = None) -> dict[str, Any]:
        return schema.dump(self.to_schema(row, lang=lang))

    def _write(self, fn: Callable[..., W], /, *args: Any, refuse_when_full: bool = False) -> W:
        """A store write; a database failure becomes an error with a code (DISK_FULL…), not a 500.

        New links are refused up front on a full disk (``refuse_when_full``); a join still tries (it
        only rewrites a row and may well succeed), so a patient is not turned away needlessly.
        """
        if refuse_when_full and self.storage is not None and (refused := self.storage.refuse_writes()) is not None:
            raise refused
        try:
            out = fn(*args)
        except DBAPIError as exc:
            if self.storage is None or self.store.is_connection_error(exc):
                raise  # a lost database connection: the store makes it STORE_UNAVAILABLE
            raise self.storage.write_failed(exc) from exc
        if self.storage is not None:
            self.storage.write_ok()
        return out

    # -- operations -------------------------------------------------------------------------------
    def create(
        self,
        *,
        professional_id: str,
        client_id: str | None = None,
        consultation_type: str | None = None,
        expires_in_s: float | None = None,
        max_uses: int | None = None,
        proven: Proof | None = None,
        room: str | None = None,
        token: str | None = None,
    ) -> tuple[LinkRow, str]:
        """Issue a link; returns the row and the token (the only time it is plain).

        ``token``: one made ahead (:class:`PreparedTokens`); a new one otherwise.

        The link is ``preparing`` unless ``proven`` carries a verification that is still fresh, in
        which case it is stored ``ready`` at once (one write, no second round trip).
        """
        now = self.clock()
        token = token or keys.new_token()
        row = LinkRow(
            id="lk_" + secrets.token_hex(8),
            token_hash=keys.token_hash(token),
            token_enc=self.secrets.encrypt_token(token),
            professional_id=professional_id,
            client_id=client_id,
            consultation_type=consultation_type,
            room=room or "consulta-" + secrets.token_hex(8),  # the app's own room when it names one
            status=StoredStatus.PREPARING.value,
            created_at=now,
            expires_at=now + timedelta(seconds=expires_in_s or self.default_ttl_s),
            max_uses=self.default_max_uses if max_uses is None else max_uses,
            uses=0,
        )
        if proven is not None:
            row.status = StoredStatus.READY.value
            row.verified_at = proven.verified_at
            row.sent_base_url = proven.base_url
            row.checks_json = proven.checks_json
        self._write(self.store.insert, row, refuse_when_full=True)
        return row, token

    def get(self, link_id: str) -> LinkRow:
        row = self.store.get(link_id)
        if row is None:
            raise LinkNotFound()
        return row

    def resolve(self, token: str) -> tuple[LinkRow | None, str]:
        """The link behind a token and its status (``not_found`` when unknown). No side effect."""
        row = self.store.by_token_hash(keys.token_hash(token))
        if row is None:
            return None, "not_found"
        return row, self.status_of(row)

    async def join_live(self, token: str, display_name: str | None) -> JoinGrant:
        """Join a live link: LiveKit must answer first, so a use is never spent on an outage.

        LiveKit is asked first (cached: :mod:`linkpronto.livekit.reach`); when it answers, the use is
        counted atomically and the token issued (one store call). When it does not, the token is
        only resolved, so an unknown or gone link still answers 404/410, and a live one
        :class:`LivekitUnhealthy` (503, retryable) — nothing counted either way.
        """
        if self.credentials() is not None and (self.livekit_answers is None or await self.livekit_answers()):
            if self.ensure_room is not None:
                row, status = await self.store.call(self.resolve, token)
                if row is not None and status == LinkStatus.READY:
                    refusal = await self.ensure_room(row.room)
                    if refusal is not None:
                        err = room_not_created(refusal)
                        # the patient reads a generic outage sentence; the operator's log says why and the fix
                        _log.warning("%s: %s %s (%s)", err.code, err.text.en,
                                     err.fix_text.en if err.fix_text else "", err.detail)
                        raise err
            return await self.store.call(self.join, token, display_name)
        row, status = await self.store.call(self.resolve, token)
        if row is None or status == LinkStatus.PREPARING:
            raise LinkNotFound()
        if status != LinkStatus.READY:
            raise LinkGone(status)
        raise livekit_unreachable()

    def join(self, token: str, display_name: str | None) -> JoinGrant:
        creds = self.credentials()
        digest = keys.token_hash(token)
        now = self.clock()
        if creds is None:
            raise livekit_unreachable()
        result = self._write(self.store.use, digest, now)
        if result.row is None:
            raise LinkNotFound()
        if not result.ok:
            status = self.status_of(result.row, now)
            if status == LinkStatus.PREPARING:
                raise LinkNotFound()
            raise LinkGone(status if status in ("expired", "revoked", "exhausted") else "revoked")
        row = result.row
        ttl = timedelta(seconds=min(self.join_token_ttl_s, max(1.0, (row.expires_at - now).total_seconds())))
        identity = tokens.opaque_identity("p")
        name = (display_name or "").strip()[:80] or None
        jwt = tokens.join_token(
            creds.api_key, creds.api_secret, room=row.room, identity=identity, name=name, ttl=ttl
        )
        return JoinGrant(creds.livekit_url, jwt, row.room, identity, now + ttl)

    def host_token(self, link_id: str, name: str | None = None) -> dict[str, Any]:
        row = self.get(link_id)
        creds = self.credentials()
        if creds is None:
            raise LivekitUnhealthy(
                Text("O servidor de vídeo ainda não está pronto.", "The video server is not ready yet."),
                fix=Text("Aguarde alguns segundos e tente de novo.", "Wait a few seconds and try again."),
            )
        identity = tokens.opaque_identity("h")
        jwt = tokens.host_token(creds.api_key, creds.api_secret, room=row.room, identity=identity, name=name)
        return {"livekit_url": creds.livekit_url, "access_token": jwt, "room": row.room, "identity": identity}

    async def revoke(self, link_id: str) -> LinkRow:
        """Revoke: no new join, everyone in the room removed (RoomService), and the join tokens
        already issued refused at linkpronto's LiveKit gateway until they expire (LiveKit itself
        refuses them after ``join_token_ttl`` plus its 60 s leeway)."""
        now = self.clock()
        until = now + timedelta(seconds=self.join_token_ttl_s + tokens.LIVEKIT_LEEWAY_S)
        row = await self.store.call(self.store.revoke, link_id, now, until)
        if row is None:
            raise LinkNotFound()
        self.revocations.note(row.room, until)
        if self.remove_participants is not None:
            await self.remove_participants(row.room)
        return row

    async def room_revoked(self, room: str) -> bool:
        """True while tokens for ``room`` (a revoked link's, revoked by any instance sharing the
        store, before or after a restart) could still be accepted by LiveKit."""
        return await self.revocations.is_revoked(room)

    def record_device_check(self, token: str, result: dict[str, Any]) -> bool:
        """Store a result already validated and bounded by :mod:`linkpronto.links.inputs`."""
        result = dict(result)
        result["received_at"] = iso(self.clock())
        return bool(self._write(self.store.set_device_check, keys.token_hash(token), result))

    # -- the app-route guard (linkpronto.gateway.guard) --------------------------------------------
    def guard_lookup(self, link_id: str) -> tuple[str, float] | None:
        """(status, expiry as a UNIX time) of a link by id; None when it does not exist."""
        row = self.store.get(link_id)
        if row is None:
            return None
        return self.status_of(row), row.expires_at.timestamp()

    def guard_use(self, link_id: str) -> tuple[bool, str]:
        """Count one use of a ready link (atomically, as a join does); (counted, status after)."""
        row = self.store.get(link_id)
        if row is None:
            return False, "not_found"
        result = self._write(self.store.use, row.token_hash, self.clock())
        after = result.row or row
        return result.ok, self.status_of(after)

