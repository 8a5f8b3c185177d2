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

Guessing stays pointless: link tokens carry 192 bits.
"""

from __future__ import annotations

from limits import RateLimitItemPerMinute, strategies

from linkpronto.limits_storage import storage_for

ANONYMOUS = "anonymous"


class FailedJoinLimiter:
    def __init__(self, storage_uri: str, per_minute: int) -> None:
        self.item = RateLimitItemPerMinute(per_minute)
        self.limiter = strategies.MovingWindowRateLimiter(storage_for(storage_uri))

    @staticmethod
    def key(address: str | None) -> str:
        return f"join-fail:{address or ANONYMOUS}"

    def fail(self, address: str | None) -> bool:
        """Record one failure; False when it is beyond the limit (answer 429 instead)."""
        return bool(self.limiter.hit(self.item, self.key(address)))

    def blocked(self, address: str | None) -> bool:
        """True when the next failure would be refused (informational: never consulted for a live link)."""
        return not self.limiter.test(self.item, self.key(address))
