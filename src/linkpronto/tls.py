"""One TLS client context for every HTTP client linkpronto makes.

``httpx.AsyncClient()`` builds a fresh ``ssl.SSLContext`` and loads the whole CA bundle into it each
time (~30 ms of CPU here); the stack makes several clients per start (its ladder, the LiveKit health
check, probes, the events sender). One context, loaded once and shared (an ``SSLContext`` is safe to
share between connections and clients), verifies exactly as the default does.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """The default verifying context (certifi's CA bundle, as httpx's own default), made once."""
    return httpx.create_ssl_context()
