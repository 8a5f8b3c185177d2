"""Which rooms belong to revoked links, as every instance's LiveKit gateway asks it.

The answer lives in the store (``link_revocations``, written in the revoke's own transaction), so a
revocation made on one ``serve`` instance is refused by all of them, and still after a restart. The
gateway asks per WebSocket or ``/validate`` — a handful per patient, never per media packet — and
the question stays cheap, the way OAuth token introspection caches (RFC 7662 §4):

- a room known revoked is answered from memory until its ``until`` (revocations are never undone);
- a room found *not* revoked is remembered for :data:`CLEAR_TTL_S` (bounded to :data:`MAX_CLEAR`
  rooms), so a burst of reconnects costs one indexed query per room and second;
- the gateway only asks for tokens signed with the stack's key and not yet past LiveKit's own expiry
  (web.rtc_guard): forged or expired tokens are LiveKit's to refuse and never reach the database.

When the store cannot answer, what this instance knows (its own revocations, and every one it loaded
or saw) is still refused; any other token falls back to LiveKit's own expiry (``join_token_ttl`` +
60 s): fail-open, so an outage of the database does not cut every call in progress at its next
reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from linkpronto.errors import StoreUnavailable
from linkpronto.links.store import LinkStore

log = logging.getLogger(__name__)

#: How long "this room is not revoked" is believed: the most a revocation made on another instance
#: waits before this one refuses it too.
CLEAR_TTL_S = 1.0
MAX_CLEAR = 4096


class Revocations:
    def __init__(self, store: LinkStore, clock: Callable[[], datetime],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        #: Rooms known revoked → until when LiveKit could still accept their tokens.
        self.known: dict[str, datetime] = {}
        self._clear: dict[str, float] = {}
        #: Store queries made (for tests and bench/edge.py).
        self.queries = 0

    def note(self, room: str, until: datetime) -> None:
        """A revocation this instance just wrote (or read): refused at once, without asking."""
        if self.known.get(room, until) <= until:
            self.known[room] = until
        self._clear.pop(room, None)

    async def load(self) -> int:
        """Every revocation still in force (at start-up); returns how many rooms."""
        try:
            active = await self.store.call(self.store.active_revocations, self.clock())
        except StoreUnavailable:
            return 0
        for room, until in active.items():
            self.note(room, until)
        return len(active)

    def known_revoked(self, room: str) -> bool:
        until = self.known.get(room)
        if until is None:
            return False
        if until <= self.clock():
            self.known.pop(room, None)
            return False
        return True

    async def is_revoked(self, room: str) -> bool:
        if self.known_revoked(room):
            return True
        t = self.monotonic()
        clear_until = self._clear.get(room)
        if clear_until is not None and clear_until > t:
            return False
        self.queries += 1
        try:
            until = await self.store.call(self.store.revoked_until, room, self.clock())
        except StoreUnavailable:
            return False  # fail-open: LiveKit's own expiry still applies (see the module's text)
        if until is not None:
            self.note(room, until)
            return True
        self._clear.pop(room, None)
        while len(self._clear) >= MAX_CLEAR:
            self._clear.pop(next(iter(self._clear)))
        self._clear[room] = t + CLEAR_TTL_S
        return False
