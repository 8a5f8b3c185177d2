"""The opt-in guard of app routes the app left open (``app.protected_routes``).

An app's own LiveKit token route (``/api/livekit/token``) often signs for any room without asking who
calls: through the tunnel, anyone on the internet could mint tokens. With ``app.protected_routes``
naming it, a public request (everything on linkpronto's public listener is public) reaches it only
from a browser that opened a *live* link's page through the gateway:

* When the gateway serves a link route (the app's ``app.link_path`` or ``/_linkpronto/c/{token}``)
  for a ready link, the answer carries the cookie :data:`COOKIE` (HttpOnly, ``SameSite=Lax``,
  ``Secure`` when the public URL is https). Its value names the link id, an expiry, a random browser
  session id and whether that session already counted its use, sealed with an HMAC of the instance
  secret. It never contains the link's token.
* A public request to a protected route without a valid cookie answers 401 ``LINK_REQUIRED``; with a
  cookie whose link is expired, revoked or (for a session that has not counted yet) used up, 403
  ``LINK_GONE``. The link's state is read from the store on every protected request, so a revoke
  takes effect on the next call.
* Uses: the first protected request of a browser session counts one use of the link, atomically,
  exactly as a ``/_linkpronto/api/join`` does (so ``max_uses`` means "browsers that got in"); the
  answer re-seals the cookie as counted, and later calls of that session (token refreshes,
  reconnects) count nothing and go on working while the link is used up, until it expires or is
  revoked. Re-opening the page in the same browser keeps its session (no second use).

Requests to the app's own port (on this computer) never pass here: local access is unaffected.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from starlette.types import Message, Send

from linkpronto.errors import LinkGone, LinkprontoError, LinkRequired
from linkpronto.gateway._headers import RawHeaders

COOKIE = "linkpronto_link"
#: A browser session lasts at most this long (and never beyond the link's own expiry).
SESSION_MAX_S = 12 * 3600
_VERSION = "v1"
_DOMAIN = b"linkpronto-guard-v1|"
_COUNTED_MEMORY = 10_000

Status = str  # "ready" | "expired" | "revoked" | "exhausted" | "preparing" | "not_found"
#: link id → (status, expiry as a UNIX time) — None when the link does not exist.
Lookup = Callable[[str], Awaitable[tuple[Status, float] | None]]
#: link id → (counted, status after) — one use, atomically, only if the link is ready.
CountUse = Callable[[str], Awaitable[tuple[bool, Status]]]


@dataclass(frozen=True)
class Session:
    link_id: str
    expires: int
    sid: str
    counted: bool


@dataclass(frozen=True)
class Decision:
    """What to do with a protected request: pass (maybe re-sealing the cookie) or refuse."""

    allow: bool
    status: int = 200
    error: LinkprontoError | None = None
    set_cookie: str | None = None


class RouteMatcher:
    """Path prefixes (``/api/livekit/token`` also covers ``/api/livekit/token/…``) or simple globs
    (``/api/*/token``), compared case-insensitively (a case-insensitive file system may serve both)."""

    def __init__(self, patterns: Sequence[str]) -> None:
        globs = [p for p in patterns if any(c in p for c in "*?[")]
        self.globs = [g.lower() for g in globs]
        self.prefixes = [p.lower().rstrip("/") for p in patterns if p not in globs]

    def __bool__(self) -> bool:
        return bool(self.globs or self.prefixes)

    def __call__(self, path: str) -> bool:
        p = path.lower()
        for prefix in self.prefixes:
            if prefix == "" or p == prefix or p.startswith(prefix + "/"):
                return True
        return any(fnmatch.fnmatchcase(p, g) for g in self.globs)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class LinkGuard:
    def __init__(
        self,
        patterns: Sequence[str],
        secret: bytes,
        lookup: Lookup,
        count_use: CountUse,
        *,
        secure: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.protects = RouteMatcher(patterns)
        self._key = hashlib.sha256(_DOMAIN + secret).digest()
        self._lookup = lookup
        self._count_use = count_use
        self._secure = secure
        self._clock = clock
        # Sessions counted by this process (a second concurrent first request must not count twice).
        self._counted: OrderedDict[str, None] = OrderedDict()

    # -- the sealed cookie ---------------------------------------------------------------------------
    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    def seal(self, s: Session) -> str:
        body = f"{_VERSION}.{s.link_id}.{s.expires}.{s.sid}.{int(s.counted)}"
        return f"{body}.{self._mac(body)}"

    def unseal(self, value: str) -> Session | None:
        parts = value.split(".")
        if len(parts) != 6 or parts[0] != _VERSION:
            return None
        body, mac = ".".join(parts[:5]), parts[5]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            expires = int(parts[2])
        except ValueError:
            return None
        if expires <= self._clock():
            return None
        return Session(parts[1], expires, parts[3], parts[4] == "1")

    def session_of(self, raw: RawHeaders) -> Session | None:
        found = None
        for name, value in raw:
            if name != b"cookie":
                continue
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE and (s := self.unseal(v.strip().strip('"'))) is not None:
                    found = s  # the last valid one
        return found

    def set_cookie(self, s: Session) -> str:
        max_age = max(0, int(s.expires - self._clock()))
        attrs = f"{COOKIE}={self.seal(s)}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        return attrs + ("; Secure" if self._secure() else "")

    # -- the two moments ----------------------------------------------------------------------------
    def page_cookie(self, link_id: str, link_expires: float, raw: RawHeaders) -> str:
        """The ``Set-Cookie`` for a browser that opened a live link's page (its session is kept)."""
        now = self._clock()
        expires = int(min(link_expires, now + SESSION_MAX_S))
        current = self.session_of(raw)
        if current is not None and current.link_id == link_id:
            return self.set_cookie(Session(link_id, max(expires, current.expires), current.sid, current.counted))
        return self.set_cookie(Session(link_id, expires, secrets.token_hex(8), False))

    async def check(self, raw: RawHeaders) -> Decision:
        """A public request to a protected route."""
        s = self.session_of(raw)
        if s is None:
            return Decision(False, 401, LinkRequired())
        found = await self._lookup(s.link_id)
        if found is None:
            return Decision(False, 401, LinkRequired())
        status, _ = found
        if status not in ("ready", "exhausted", "expired", "revoked"):
            return Decision(False, 401, LinkRequired())
        if status in ("expired", "revoked"):
            return Decision(False, 403, LinkGone(status))
        if s.counted or s.sid in self._counted:
            return Decision(True)  # this browser got in already: used up is no reason to stop it
        if status != "ready":
            return Decision(False, 403, LinkGone(status))
        self._remember(s.sid)
        counted, after = await self._count_use(s.link_id)
        if not counted:
            self._counted.pop(s.sid, None)
            reason = after if after in ("expired", "revoked", "exhausted") else "revoked"
            return Decision(False, 403, LinkGone(reason))
        return Decision(True, set_cookie=self.set_cookie(Session(s.link_id, s.expires, s.sid, True)))

    def _remember(self, sid: str) -> None:
        self._counted[sid] = None
        while len(self._counted) > _COUNTED_MEMORY:
            self._counted.popitem(last=False)


def with_cookie(send: Send, cookie: str, when: Literal["ok", "always"] = "ok") -> Send:
    """``send`` that adds ``Set-Cookie: cookie`` to the answer (only to a non-error one for ``ok``)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and (when == "always" or message.get("status", 200) < 400):
            message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]}
        await send(message)

    return wrapped
