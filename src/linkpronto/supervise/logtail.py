"""A child's output, line by line: redacted, bounded, handed to a callback and to a log-line probe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from linkpronto.paths import PROBE_TOKEN
from linkpronto.redaction import redact
from linkpronto.supervise.spec import REDACTED

#: Terminal control sequences (colours, cursor show/hide) a child prints: never shown raw.
_TERMINAL_CODES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024  # a longer "line" is cut: the tail stays bounded whatever the child writes
CHUNK_BYTES = 64 * 1024


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Known secrets by value, then anything shaped like a link token or a JWT (``redaction``)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return redact(text)


class OutputTail:
    """Keeps the last ``maxlen`` redacted lines and dispatches each line as it arrives."""

    def __init__(
        self,
        maxlen: int,
        redact: Iterable[str] = (),
        on_line: Callable[[str], None] | None = None,
    ) -> None:
        self.lines: deque[str] = deque(maxlen=maxlen)
        self._redact = Redactor(redact)
        self._on_line = on_line
        self._pattern: re.Pattern[str] | None = None
        self._matched: asyncio.Event | None = None

    def watch(self, pattern: re.Pattern[str] | None) -> asyncio.Event:
        """Start a new run: the returned event is set when a line matches ``pattern``."""
        self._pattern = pattern
        self._matched = asyncio.Event()
        return self._matched

    def feed(self, raw: bytes) -> None:
        text = self._redact(raw.decode("utf-8", errors="replace").rstrip("\r"))
        self.lines.append(text)
        if self._pattern is not None and self._matched is not None and self._pattern.search(text):
            self._matched.set()
        if self._on_line is not None:
            try:
                self._on_line(text)
            except Exception:  # a faulty callback must not stop the reading (or block the child)
                log.exception("on_line callback failed")

    async def pump(self, stream: asyncio.StreamReader) -> None:
        """Read ``stream`` to its end, feeding complete lines (and the unterminated last one)."""
        pending = b""
        while chunk := await stream.read(CHUNK_BYTES):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                self.feed(line[:MAX_LINE_BYTES])
            if len(pending) > MAX_LINE_BYTES:
                self.feed(pending[:MAX_LINE_BYTES])
                pending = b""
        if pending:
            self.feed(pending)


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One line a child printed: ``seq`` grows by one per line across every child (for ``logs -f``)."""

    seq: int
    at: float  # time.time()
    name: str  # "app", "livekit", "tunnel"
    line: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "name": self.name, "line": self.line}


class OutputHub:
    """The children's output for ``up``'s terminal and ``linkpronto logs``: a bounded buffer per child.

    Children feed it through :meth:`sink` (a ``ManagedProcess`` ``on_line``, already redacted);
    listeners (``up``'s console) are told of every line as it arrives; :meth:`tail` serves the admin
    API. Every buffer holds at most ``maxlen`` lines.
    """

    def __init__(self, maxlen: int = 2000) -> None:
        self.maxlen = maxlen
        self._lines: dict[str, deque[OutputLine]] = {}
        self._seq = 0
        self._listeners: list[Callable[[OutputLine], None]] = []

    def sink(self, name: str) -> Callable[[str], None]:
        def feed(line: str) -> None:
            plain = _TERMINAL_CODES.sub("", line)
            if plain != line and not plain.strip():
                return  # only terminal codes (e.g. "show the cursor" as the child exits)
            if PROBE_TOKEN in plain:
                return  # the verification ladder's own requests, as the app logs them: noise for the user
            line = plain
            self.publish(name, line)

        return feed

    def publish(self, name: str, line: str) -> OutputLine:
        self._seq += 1
        item = OutputLine(self._seq, time.time(), name, line)
        self._lines.setdefault(name, deque(maxlen=self.maxlen)).append(item)
        for listener in list(self._listeners):
            try:
                listener(item)
            except Exception:  # a faulty listener must not stop the child's output
                log.exception("output listener failed")
        return item

    def subscribe(self, listener: Callable[[OutputLine], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def last_seq(self) -> int:
        return self._seq

    def tail(self, name: str, n: int, after: int = 0) -> list[OutputLine]:
        """The last ``n`` lines of ``name`` with ``seq > after``, oldest first."""
        lines = [x for x in self._lines.get(name, ()) if x.seq > after]
        return lines[-n:] if n > 0 else []
