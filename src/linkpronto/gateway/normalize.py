"""One normal form for a request path, decided once, before any routing (RFC 3986 §6.2.2).

The public listener routes on this form and hands exactly this form to the user's app, so what
linkpronto decided about a path is what the app sees: ``/api/./generate-consultation-token``,
``//api//generate-consultation-token`` and ``/api/%67enerate-consultation-token`` are all
``/api/generate-consultation-token`` for both.

Steps, in RFC 3986's order:

1. percent-encodings get upper-case hex digits (§6.2.2.1): ``%2f`` → ``%2F``;
2. percent-encoded *unreserved* characters are decoded (§6.2.2.2): ``%7E`` → ``~``, ``%2E`` → ``.``
   — reserved ones such as ``%2F`` stay encoded (a ``/`` inside a segment is not a separator);
3. empty segments are collapsed (``//`` → ``/``): servers such as Next.js treat them as one;
4. dot segments are removed (§5.2.4): ``/a/b/../c/./d`` → ``/a/c/d``, never above the root.

A malformed ``%`` (not followed by two hex digits) makes the path invalid: :func:`normalize_path`
returns ``None`` and the listener answers 400, since two servers would read it two ways.
"""

from __future__ import annotations

from urllib.parse import unquote

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _percent(raw: bytes) -> bytes | None:
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c != 0x25:  # '%'
            out.append(c)
            i += 1
            continue
        hx = raw[i + 1 : i + 3]
        if len(hx) != 2 or hx[0] not in _HEX or hx[1] not in _HEX:
            return None
        value = int(hx, 16)
        if value in _UNRESERVED:
            out.append(value)
        else:
            out += b"%" + hx.upper()
        i += 3
    return bytes(out)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path, with empty segments dropped as well."""
    out: list[str] = []
    segments = path.split("/")
    for index, seg in enumerate(segments):
        last = index == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        elif seg == "":
            if last and index > 0:
                out.append("")
        else:
            out.append(seg)
    result = "/" + "/".join(out)
    return result if not result.endswith("//") else result[:-1]


def normalize_raw_path(raw: bytes) -> bytes | None:
    """The normal form of a raw (still percent-encoded) request path, or ``None`` if malformed."""
    if not raw.startswith(b"/"):
        return None if raw not in (b"", b"*") else b"/"
    encoded = _percent(raw)
    if encoded is None:
        return None
    return remove_dot_segments(encoded.decode("latin-1")).encode("latin-1")


def normalize_path(raw: str) -> str | None:
    """:func:`normalize_raw_path` for a ``str`` path (tests, the verification ladder)."""
    result = normalize_raw_path(raw.encode("utf-8"))
    return None if result is None else result.decode("latin-1")


def decoded(raw: bytes) -> str:
    """ASGI's ``path`` for a raw path: percent-decoded, UTF-8 (as uvicorn computes it)."""
    return unquote(raw.decode("latin-1"), encoding="utf-8", errors="surrogateescape")
