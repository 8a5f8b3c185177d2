"""The failed-join limiter: a client that fails too often gets 429 — a valid link never does.

Rules (issue 11):

* Only guesses count (unknown tokens). A token that resolves to a live link is never checked against
  the limiter, so no amount of guessing by others can lock a patient out of their own link (join or
  page); an expired, revoked or used-up link always gets its true 410 page.
* Exact under concurrency: a failure is recorded with the ``limits`` library's atomic ``hit()``,
  whose result decides the answer — the first ``N`` failures in a window answer 404/410, every
  later one 429. (Test-then-hit lets concurrent failures all pass the test.)
* Keyed by the client's address as :func:`linkpronto.web.common.client_address` establishes it;
  when there is no client address (an ``ssh`` tunnel, or ``auto`` before it chose), failures share
  one ``anonymous`` bucket — harmless for patients, since live links bypass the limiter.

Guessing stays pointless: link tokens carry ≥128 bits. So when the shared storage (Redis) does not
answer, a failure is let through uncounted (the caller answers its true 404) rather than answering
500 or refusing everyone, and :meth:`FailedJoinLimiter.problem` tells the status
(``LIMITER_UNAVAILABLE``) until a counter answers again.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItemPerMinute, strategies

from linkpronto.errors import LimiterUnavailable
from linkpronto.limits_storage import storage_for

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"


class FailedJoinLimiter:
    def __init__(self, storage_uri: str, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = strategies.MovingWindowRateLimiter(storage_for(storage_uri))
        self.unavailable_since: float | None = None  # time.monotonic() of the first unanswered call

    def _outage(self, exc: Exception) -> None:
        if self.unavailable_since is None:
            self.unavailable_since = time.monotonic()
            log.warning("failed-join limiter storage unavailable (%s): guesses are not counted",
                        type(exc).__name__)

    def problem(self) -> LimiterUnavailable | None:
        return LimiterUnavailable() if self.unavailable_since is not None else None

    @staticmethod
    def key(address: str | None) -> str:
        return f"join-fail:{address or ANONYMOUS}"

    def fail(self, address: str | None) -> bool:
        """Record one failure; False when it is beyond the limit (answer 429 instead). With the
        storage down: True (uncounted), and :meth:`problem` reports it."""
        try:
            allowed = bool(self.limiter.hit(self.item, self.key(address)))
        except Exception as exc:  # redis-py's ConnectionError/TimeoutError, limits' storage errors
            self._outage(exc)
            return True
        if self.unavailable_since is not None:
            log.info("failed-join limiter storage answers again")
            self.unavailable_since = None
        return allowed

    def blocked(self, address: str | None) -> bool:
        """True when the next failure would be refused (informational: never consulted for a live link)."""
        try:
            return not self.limiter.test(self.item, self.key(address))
        except Exception as exc:  # see fail()
            self._outage(exc)
            return False
