"""The dashboard's session: a one-time URL that `up` prints, traded for a cookie *and* an origin-bound secret.

``up`` prints (and on a desktop opens) ``http://127.0.0.1:<port>/?token=<login>``. The login token
is random, single-use and short-lived. Opening it sets a session cookie (``HttpOnly``,
``SameSite=Strict``, ``Path=/``) and redirects to ``/#lp-session=<secret>``: the fragment is never
sent to any server, and the dashboard's own script moves it into ``localStorage`` (scoped to the
origin — scheme, host *and* port) and sends it as ``X-Linkpronto-Session`` on every call.

Why both: browsers do not separate cookies by port, so a page another local account serves on
``127.0.0.1:<other port>`` receives the cookie. It cannot read this origin's storage, so the cookie
alone is worth nothing (the anchor: Jupyter's and code-server's local auth — a secret the page itself
holds, not one the browser attaches to every request to the host).

Lifetime: :data:`SESSION_TTL_S` absolute, :data:`SESSION_IDLE_S` idle; ``POST /api/logout`` ends one.
Sessions live in this process's memory only.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

LOGIN_TTL_S = 15 * 60.0
SESSION_TTL_S = 12 * 3600.0  # absolute: a working day, then the one-time URL again
SESSION_IDLE_S = 2 * 3600.0  # an open dashboard calls the API every 10 s; a forgotten one expires
MAX_SESSIONS = 64
MAX_LOGINS = 16
SESSION_HEADER = "x-linkpronto-session"
SESSION_FRAGMENT = "lp-session"


def cookie_name(port: int) -> str:
    """Per port: browsers share cookies across the ports of one host (the header secret is what binds)."""
    return f"linkpronto_session_{port}"


@dataclass
class _Session:
    secret: str  # the origin-bound half: sent by the page as X-Linkpronto-Session
    until: float  # absolute expiry
    idle_until: float


class DashboardSessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logins: dict[str, float] = {}
        self._sessions: dict[str, _Session] = {}

    def new_login(self) -> str:
        """A fresh single-use login token (valid :data:`LOGIN_TTL_S`)."""
        self._expire()
        while len(self._logins) >= MAX_LOGINS:
            self._logins.pop(next(iter(self._logins)))
        key = secrets.token_urlsafe(32)
        self._logins[key] = self.clock() + LOGIN_TTL_S
        return key

    def login_url(self, base_url: str) -> str:
        """A fresh one-time dashboard URL: ``<base_url>/?token=<login>``."""
        return f"{base_url.rstrip('/')}/?token={self.new_login()}"

    def redeem(self, login: str) -> tuple[str, str] | None:
        """Trade a login token for ``(cookie value, header secret)`` (the token is spent either way)."""
        self._expire()
        found = next((t for t in self._logins if _same(t, login)), None)
        if found is None:
            return None
        del self._logins[found]
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        cookie, secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        self._sessions[cookie] = _Session(secret, now + SESSION_TTL_S, now + SESSION_IDLE_S)
        return cookie, secret

    def _find(self, cookie: str) -> tuple[str, _Session] | None:
        if not cookie:
            return None
        self._expire()
        key = next((k for k in self._sessions if _same(k, cookie)), None)
        return (key, self._sessions[key]) if key is not None else None

    def known_cookie(self, cookie: str) -> bool:
        """The cookie names a live session (says nothing about who sends it: see :meth:`valid`)."""
        return self._find(cookie) is not None

    def valid(self, cookie: str, secret: str = "") -> bool:
        """Cookie *and* its origin-bound secret; a valid pair also renews the idle timer."""
        found = self._find(cookie)
        if found is None or not secret or not _same(found[1].secret, secret):
            return False
        found[1].idle_until = min(found[1].until, self.clock() + SESSION_IDLE_S)
        return True

    def end(self, cookie: str) -> bool:
        """Log out: the session is gone for every tab holding it."""
        found = self._find(cookie)
        if found is None:
            return False
        del self._sessions[found[0]]
        return True

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, until in self._logins.items() if until <= now]:
            del self._logins[key]
        for key in [k for k, s in self._sessions.items() if s.until <= now or s.idle_until <= now]:
            del self._sessions[key]


def _same(ours: str, theirs: str) -> bool:
    """Constant-time comparison of any text a client sends (``compare_digest`` refuses non-ASCII str)."""
    return hmac.compare_digest(ours.encode("utf-8"), theirs.encode("utf-8", "surrogatepass"))


def should_open_browser(environ: dict[str, str], *, isatty: bool, platform: str) -> bool:
    """Open the dashboard only on an interactive desktop: never in CI, tests or over plain SSH."""
    if environ.get("CI") or environ.get("PYTEST_CURRENT_TEST") or not isatty:
        return False
    if environ.get("SSH_CONNECTION") and not environ.get("DISPLAY"):
        return False
    if platform in ("win32", "darwin"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def open_dashboard(url: str) -> bool:
    """Open ``url`` in the user's browser when :func:`should_open_browser` says so."""
    import os
    import sys
    import webbrowser

    if not should_open_browser(dict(os.environ), isatty=sys.stdout.isatty(), platform=sys.platform):
        return False
    try:
        return bool(webbrowser.open(url, new=2))
    except webbrowser.Error:
        return False
