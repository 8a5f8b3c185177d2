"""The dashboard's session: a one-time URL that `up` prints, traded for an HttpOnly cookie.

``up`` prints (and on a desktop opens) ``http://127.0.0.1:<port>/?token=<login>``. The login token
is random, single-use and short-lived; opening it sets a session cookie (``HttpOnly``,
``SameSite=Strict``, ``Path=/``; random 256-bit value, kept only in this process's memory) and
redirects to ``/``, so the token never stays in the address bar. Nothing else grants a session:
another account on the same computer that cannot read ``admin-token`` has no way to obtain one —
a header such as ``X-Linkpronto: 1`` or a cookie *name* alone is worth nothing.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable

LOGIN_TTL_S = 15 * 60.0
SESSION_TTL_S = 7 * 86400.0
MAX_SESSIONS = 64
MAX_LOGINS = 16


def cookie_name(port: int) -> str:
    """Per port: browsers share cookies across the ports of one host."""
    return f"linkpronto_session_{port}"


class DashboardSessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logins: dict[str, float] = {}
        self._sessions: dict[str, float] = {}

    def new_login(self) -> str:
        """A fresh single-use login token (valid :data:`LOGIN_TTL_S`)."""
        self._expire()
        return self._mint(self._logins, MAX_LOGINS, LOGIN_TTL_S)

    def login_url(self, base_url: str) -> str:
        """A fresh one-time dashboard URL: ``<base_url>/?token=<login>``."""
        return f"{base_url.rstrip('/')}/?token={self.new_login()}"

    def redeem(self, login: str) -> str | None:
        """Trade a login token for a new session id (the token is spent either way)."""
        self._expire()
        found = next((t for t in self._logins if hmac.compare_digest(t, login)), None)
        if found is None:
            return None
        del self._logins[found]
        return self._mint(self._sessions, MAX_SESSIONS, SESSION_TTL_S)

    def valid(self, session: str) -> bool:
        if not session:
            return False
        self._expire()
        return any(hmac.compare_digest(s, session) for s in self._sessions)

    def _mint(self, table: dict[str, float], cap: int, ttl_s: float) -> str:
        """A new random key in ``table`` that lives ``ttl_s``; the oldest keys make room past ``cap``."""
        while len(table) >= cap:
            table.pop(next(iter(table)))
        key = secrets.token_urlsafe(32)
        table[key] = self.clock() + ttl_s
        return key

    def _expire(self) -> None:
        now = self.clock()
        for table in (self._logins, self._sessions):
            for key in [k for k, until in table.items() if until <= now]:
                del table[key]


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
