"""Parts: what every piece of the stack (LiveKit, the tunnel, the user's app) shows the runner.

A part implements :class:`Part`: ``status()`` returns a :class:`PartStatus` — one state vocabulary
for every part (:class:`~linkpronto.schema.PartState`), a ``detail`` whenever it is not ready, its
URL, its error and, for a tunnel, the provider's facts — and ``subscribe(listener)`` calls
``listener(status)`` with the NEW status on every change (the payload, never "go and look"). The
runner composes parts; it never looks inside them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from linkpronto import schema
from linkpronto.errors import LinkprontoError
from linkpronto.i18n import Lang, Text
from linkpronto.schema import PartState, iso

__all__ = ["Observable", "Part", "PartState", "PartStatus", "StatusListener", "iso", "utcnow"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PartStatus:
    """A part's status at one moment (immutable: listeners may keep it)."""

    state: PartState = PartState.STOPPED
    detail: Text = field(default_factory=lambda: Text("", ""))
    pid: int | None = None
    restarts: int = 0
    since: datetime = field(default_factory=utcnow)
    error: LinkprontoError | None = None
    url: str | None = None
    facts: Any = None  # a tunnel's ProviderFacts (a dataclass), else None

    def to_schema(self, lang: Lang | None = None) -> schema.Part:
        return schema.Part(
            state=self.state,
            detail=self.detail.get(lang),
            url=self.url,
            pid=self.pid,
            restarts=self.restarts,
            since=self.since,
            error=self.error.to_schema(lang) if self.error else None,
            facts=asdict(self.facts) if is_dataclass(self.facts) and not isinstance(self.facts, type) else None,
        )


StatusListener = Callable[[PartStatus], None]


@runtime_checkable
class Part(Protocol):
    """A part of the stack that can be started, stopped and observed."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> PartStatus: ...

    def subscribe(self, listener: StatusListener) -> Callable[[], None]: ...


class Observable:
    """Listener bookkeeping shared by parts: ``subscribe`` returns the unsubscribe callable, and
    ``_notify()`` hands every listener the part's new status."""

    def __init__(self) -> None:
        self._listeners: list[StatusListener] = []

    def status(self) -> PartStatus:
        raise NotImplementedError

    def subscribe(self, listener: StatusListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(self) -> None:
        if not self._listeners:
            return
        status = self.status()
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # a faulty listener must not break the part
                log.exception("status listener failed")
