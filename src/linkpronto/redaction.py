"""Credentials out of every line linkpronto shows or keeps, whatever a child or a library prints.

A supervised app logs request paths (``next dev``: ``GET /consultations/client/<token> 200``), an HTTP
library logs URLs (``/rtc/validate?access_token=<JWT>``): a link token or a LiveKit JWT must never
reach ``up``'s output, ``linkpronto logs``, ``/api/logs`` or a log file (LGPD; a token is the patient's
key to the room). Three shapes are replaced, wherever they stand in a line:

- ``access_token=…`` / ``token=…`` query values (LiveKit's signalling URLs, our own probe URLs);
- JSON Web Tokens (``eyJ…​.eyJ…​.…``);
- token-shaped URL path segments: 20 or more characters of the URL-safe alphabet alone between
  slashes (a link token in any ``link_path``), unless they read as a slug (lower-case words joined by
  ``-``/``_``). File names (with a dot) and short segments are kept, so
  ``/_next/static/chunks/app-3f2a.js`` and ``/api/generate-consultation-token`` stay readable.

:func:`redact` is pure; :class:`RedactingFilter` applies it to every :mod:`logging` record.
"""

from __future__ import annotations

import logging
import re

REDACTED_TOKEN = "[token]"

_QUERY = re.compile(r"(?P<key>\b(?:access_token|token)=)(?![*\[])[^&\s\"'#]+", re.IGNORECASE)  # not twice
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+")
_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{20,}(?=$|[/?#\s\"'])")


_WORD = re.compile(r"[a-z]{1,12}[0-9]*|[0-9]{1,12}")


def _token_shaped(segment: str) -> bool:
    """A random string, not a slug. A slug is short lower-case words (and numbers) joined by ``-`` or
    ``_`` — ``generate-consultation-token``, ``test_env_and_cwd_reach_the_chi0``; a link token is one
    long run (``k3j4…``, base32) or mixed case and digits (``Zme8F…``, base64url, hex)."""
    return not all(_WORD.fullmatch(part) for part in re.split(r"[-_]", segment) if part)


def redact(text: str) -> str:
    if "=" in text:
        text = _QUERY.sub(lambda m: m.group("key") + REDACTED_TOKEN, text)
    if "eyJ" in text:
        text = _JWT.sub(REDACTED_TOKEN, text)
    if "/" in text:
        text = _SEGMENT.sub(lambda m: REDACTED_TOKEN if _token_shaped(m.group(0)) else m.group(0), text)
    return text


class RedactingFilter(logging.Filter):
    """Formats a record's message once and keeps only its redacted text (arguments dropped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep logging's own error path
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install(*loggers: logging.Logger) -> None:
    """Add the filter to the handlers of ``loggers`` (root by default), once each."""
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
