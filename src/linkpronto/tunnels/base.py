"""The one interface every tunnel provider implements.

A provider points a public address at the public listener (``127.0.0.1:<public_port>``):
``open()`` returns the public URL once it is known, ``close()`` tears everything down, and while open
the provider reports :class:`TunnelEvent` s (``url_changed``, ``disconnected``, ``reconnected``) to
the callback given at construction. A provider is a :class:`~linkpronto.components.Part`:
``status()`` and ``subscribe(listener(status))`` like LiveKit and the app, with its
:class:`ProviderFacts`. ``describe()`` is the tunnel block the dashboard and ``linkpronto status``
show. Providers raise :class:`~linkpronto.errors.TunnelError` subclasses.

Subclasses report through three helpers only, so the disconnect / reconnect / URL-changed logic
exists once: :meth:`TunnelProvider._disconnected`, :meth:`TunnelProvider._reconnected` (which also
reports ``url_changed`` when the URL moved) and :meth:`TunnelProvider._failed`.
"""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from linkpronto import schema
from linkpronto.components import Observable, PartStatus, utcnow
from linkpronto.errors import LinkprontoError
from linkpronto.i18n import Lang, Text
from linkpronto.machine import tunnel_recoverable
from linkpronto.schema import PartState


class TunnelEventKind(enum.StrEnum):
    URL_CHANGED = "url_changed"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"


@dataclass(frozen=True, slots=True)
class TunnelEvent:
    kind: TunnelEventKind
    url: str | None = None
    old_url: str | None = None
    detail: str = ""


TunnelCallback = Callable[[TunnelEvent], None]


@dataclass(slots=True)
class TunnelStatus:
    provider: str
    state: PartState = PartState.STOPPED
    public_url: str | None = None
    detail: Text = field(default_factory=lambda: Text("", ""))
    last_error: LinkprontoError | None = None
    reconnects: int = 0
    since: datetime = field(default_factory=utcnow)
    # One line on the provider's trade-off (fixed URL or not, account, warning page, media).
    tradeoff: Text | None = None

    def to_schema(self, lang: Lang | None = None) -> schema.TunnelInfo:
        """``Status.tunnel`` (the wire's model), rendered in ``lang``."""
        return schema.TunnelInfo(
            provider=self.provider,
            state=self.state,
            public_url=self.public_url,
            detail=self.detail.get(lang),
            last_error=self.last_error.to_schema(lang) if self.last_error else None,
            reconnects=self.reconnects,
            since=self.since,
            tradeoff=self.tradeoff.get(lang) if self.tradeoff else None,
        )

    def to_json(self, lang: Lang | None = None) -> dict[str, Any]:
        doc = schema.dump(self.to_schema(lang))
        del doc["facts"]  # not part of this block's JSON (Status.tunnel never filled it)
        return doc


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """What a provider *is*, so nothing else compares provider names.

    ``client_ip_header`` is the one request header the provider's edge sets with the visitor's
    address (``None``: the provider gives no client address, e.g. ssh); it is trusted only for
    connections arriving from the provider's own hop (loopback, where the agent/SDK runs).
    """

    https: bool
    client_ip_header: str | None
    binds_lan: bool
    forwards_media: bool


log = logging.getLogger(__name__)
NO_DETAIL = Text("", "")


class TunnelProvider(Observable, abc.ABC):
    """Base class: subclasses implement ``_open`` / ``_close`` and report through the helpers below."""

    name: str = "base"
    tradeoff: Text = Text("", "")
    #: True when the public URL is HTTPS (phones allow the camera only on secure pages).
    https: bool = True
    #: The header the provider's edge sets with the client's address (see :class:`ProviderFacts`).
    client_ip_header: str | None = None
    #: True when the public listener must bind every interface (devices connect to it directly).
    binds_lan: bool = False
    #: True when the provider also carries LiveKit's media port (ICE/TCP) to a public host.
    forwards_media: bool = False

    @property
    def facts(self) -> ProviderFacts:
        return ProviderFacts(self.https, self.client_ip_header, self.binds_lan, self.forwards_media)

    def __init__(self, local_port: int, on_event: TunnelCallback | None = None) -> None:
        super().__init__()
        self.local_port = local_port
        self._on_event = on_event
        self._status = TunnelStatus(provider=self.name, tradeoff=self.tradeoff)
        self._down = False  # a disconnection was reported and no reconnection since

    def status(self) -> PartStatus:
        st = self.describe()
        detail = st.detail if st.detail.en else Text.same(st.public_url or "")
        return PartStatus(
            state=st.state,
            detail=Text.same(f"{st.provider}: ") + detail if detail.en else Text.same(st.provider),
            restarts=st.reconnects,
            since=st.since,
            error=st.last_error,
            url=st.public_url,
            facts=self.facts,
        )

    @property
    def public_url(self) -> str | None:
        return self._status.public_url

    def describe(self) -> TunnelStatus:
        return self._status

    def set_callback(self, on_event: TunnelCallback | None) -> None:
        self._on_event = on_event

    async def open(self) -> str:
        self._set(PartState.STARTING, NO_DETAIL)
        try:
            url = await self._open()
        except LinkprontoError as exc:
            self._status.last_error = exc
            # Unreachable is retried by whoever opens the tunnel (the stack, with back-off): not failed
            # for good. Anything else (a refused token, a bad setting) will not recover unattended.
            recoverable = tunnel_recoverable(exc)
            self._set(PartState.UNHEALTHY if recoverable else PartState.FAILED, exc.text)
            raise
        self._status.public_url = url.rstrip("/")
        self._set(PartState.READY, NO_DETAIL)
        return self._status.public_url

    async def close(self) -> None:
        try:
            await self._close()
        finally:
            self._set(PartState.STOPPED, NO_DETAIL)

    # The Part interface: a tunnel starts by opening and stops by closing.
    async def start(self) -> None:
        await self.open()

    async def stop(self) -> None:
        await self.close()

    @abc.abstractmethod
    async def _open(self) -> str: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    # -- helpers for subclasses -------------------------------------------------------------
    def _set(self, state: PartState, detail: Text | str) -> None:
        self._status.state = state
        self._status.detail = detail if isinstance(detail, Text) else Text.same(detail)
        self._status.since = utcnow()
        self._notify()

    def _disconnected(self, detail: Text | str) -> None:
        """Report a disconnection once (until the provider reconnects), unless it already failed."""
        if not self._down and self._status.state is not PartState.FAILED:
            self._down = True
            text = detail if isinstance(detail, Text) else Text.same(detail)
            self._set(PartState.UNHEALTHY, text)
            self._emit(TunnelEvent(TunnelEventKind.DISCONNECTED, url=self.public_url, detail=text.en))

    def _reconnected(self, url: str | None) -> None:
        """The provider serves (again): report ``reconnected`` after a disconnection, and
        ``url_changed`` when the public URL moved."""
        old = self.public_url
        if self._down:
            self._down = False
            self._emit(TunnelEvent(TunnelEventKind.RECONNECTED, url=url or old))
        if url and old and url.rstrip("/") != old:
            log.warning("TUNNEL_URL_CHANGED %s: %s -> %s", self.name, old, url)
            self._emit(TunnelEvent(TunnelEventKind.URL_CHANGED, url=url, old_url=old))

    def _failed(self, error: LinkprontoError) -> None:
        """It will not recover unattended (bad token, crash loop): FAILED with the error."""
        self._status.last_error = error
        self._down = True
        self._set(PartState.FAILED, error.text)

    def _emit(self, event: TunnelEvent) -> None:
        if event.kind is TunnelEventKind.URL_CHANGED and event.url:
            self._status.public_url = event.url.rstrip("/")
            self._notify()
        elif event.kind is TunnelEventKind.DISCONNECTED:
            if self._status.state is not PartState.UNHEALTHY:
                self._set(PartState.UNHEALTHY, event.detail)
        elif event.kind is TunnelEventKind.RECONNECTED:
            self._status.reconnects += 1
            self._set(PartState.READY, NO_DETAIL)
        if self._on_event is not None:
            self._on_event(event)
