"""What every part of the stack (LiveKit, tunnel, the user's app) shows the orchestrator.

A component has a :class:`ComponentState`, a ``reason`` whenever it is not ready, and tells its
listeners about every change. The stack composes components; it never looks inside them.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from linkpronto.errors import LinkprontoError

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class ComponentState(enum.StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    ADOPTED = "adopted"  # someone else runs it; we only health-check it
    EXTERNAL = "external"  # configured as external/cloud; ready when its health check passes
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    STOPPING = "stopping"
    FAILED = "failed"  # will not recover unattended

    @property
    def is_up(self) -> bool:
        return self in (ComponentState.READY, ComponentState.ADOPTED, ComponentState.EXTERNAL)


@dataclass(slots=True)
class ComponentStatus:
    state: ComponentState = ComponentState.STOPPED
    detail: str = ""
    pid: int | None = None
    restarts: int = 0
    since: datetime = field(default_factory=utcnow)
    error: LinkprontoError | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state.value,
            "detail": self.detail,
            "pid": self.pid,
            "restarts": self.restarts,
            "since": iso(self.since),
        }
        if self.error is not None:
            out["error"] = self.error.to_problem()
        return out


Listener = Callable[[], None]


@runtime_checkable
class Component(Protocol):
    """A part of the stack that can be started, stopped and observed."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> ComponentStatus: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...


class Observable:
    """Listener bookkeeping shared by components: ``subscribe`` returns the unsubscribe callable."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:  # a faulty listener must not break the component
                log.exception("status listener failed")
