"""Header plumbing shared by the two proxies: upstream addresses, hop-by-hop filtering, X-Forwarded-*.

ASGI hands headers over as ``list[tuple[bytes, bytes]]`` with lower-case names; everything here keeps
that shape so a request is never re-encoded on its way through.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import Scope

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text

RawHeaders = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1 plus the de-facto ones proxies drop. ``host`` is replaced, never forwarded as is.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Headers a WebSocket client library regenerates itself for the upstream handshake.
WS_HANDSHAKE: frozenset[bytes] = frozenset(
    {
        b"host",
        b"origin",
        b"user-agent",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)

_X_FORWARDED: frozenset[bytes] = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a proxy sends requests, parsed once per distinct URL string."""

    scheme: str  # "http" | "https"
    host: str  # what we connect to (an IP literal or a name)
    port: int
    authority: bytes  # the Host header the upstream receives, e.g. b"localhost:3001"
    origin: str  # what the upstream believes is its own origin, e.g. "http://localhost:3001"
    connect_origins: tuple[str, ...]  # origins the upstream may write into Location headers

    @property
    def ws_scheme(self) -> str:
        return "wss" if self.scheme == "https" else "ws"


@functools.lru_cache(maxsize=16)
def parse_upstream(url: str) -> Upstream:
    """Parse ``http://127.0.0.1:3001`` into an :class:`Upstream` (cached: the callable is hot)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise ConfigInvalid(
            Text(
                "Endereço interno inválido para o proxy: {url}",
                "Invalid internal address for the proxy: {url}",
            ).format(url=url),
            detail=url,
        )
    scheme = "https" if parts.scheme in ("https", "wss") else "http"
    default_port = 443 if scheme == "https" else 80
    port = parts.port or default_port
    host = parts.hostname
    # A dev server trusts "localhost" (Next.js allows `localhost` and `*.localhost` out of the box), not
    # necessarily 127.0.0.1, so a loopback upstream is presented to itself under the name localhost.
    shown = "localhost" if _is_loopback(host) else host
    if ":" in shown:  # IPv6 literal
        shown = f"[{shown}]"
    authority = shown if port == default_port else f"{shown}:{port}"
    literal = f"[{host}]" if ":" in host else host
    connect_authority = literal if port == default_port else f"{literal}:{port}"
    origins = {f"{scheme}://{authority}", f"{scheme}://{connect_authority}"}
    return Upstream(
        scheme=scheme,
        host=host,
        port=port,
        authority=authority.encode("latin-1"),
        origin=f"{scheme}://{authority}",
        connect_origins=tuple(sorted(origins)),
    )


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in ``Connection:`` (they are hop-by-hop too, RFC 9110 §7.6.1)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def normalize_authority(value: str) -> str:
    """``Example.COM:443`` → ``example.com`` so a Host header and an Origin's host compare equal."""
    value = value.strip().lower()
    for suffix in (":80", ":443"):
        if value.endswith(suffix):
            return value[: -len(suffix)]
    return value


def forwarded_values(
    scope: Scope, headers: Iterable[tuple[bytes, bytes]], *, proto: str | None = None
) -> RawHeaders:
    """The ``X-Forwarded-For/Proto/Host`` a request carries upstream.

    ``For``: a chain that arrived (from a tunnel agent on this machine) is kept and the peer appended
    unless it is already its last hop (uvicorn, trusting a loopback peer, may have made it the client).
    ``Proto``: ``proto`` when the caller knows it (the request came in on the public URL, whose scheme
    is known even when the tunnel does not say it), else what a tunnel stated, else this socket's.
    ``Host``: always the Host this request arrived with — the public host through a tunnel — so a
    visitor cannot make the app believe in another one.
    """
    xff: bytes | None = None
    stated_proto: bytes | None = None
    host: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
        elif name == b"x-forwarded-proto":
            stated_proto = value
        elif name == b"host":
            host = value
    client = scope.get("client")
    peer = client[0].encode("latin-1") if client else None
    if peer is not None:
        if xff is None:
            xff = peer
        elif xff.rsplit(b",", 1)[-1].strip() != peer:
            xff = xff + b", " + peer
    if proto is not None:
        proto_value = proto.encode("latin-1")
    elif stated_proto is not None:
        proto_value = stated_proto.split(b",", 1)[0].strip()
    else:
        proto_value = b"https" if scope.get("scheme") in ("https", "wss") else b"http"
    out: RawHeaders = []
    if xff is not None:
        out.append((b"x-forwarded-for", xff))
    out.append((b"x-forwarded-proto", proto_value))
    if host is not None:
        out.append((b"x-forwarded-host", host))
    return out


def is_x_forwarded(name: bytes) -> bool:
    return name in _X_FORWARDED


def loggable_path(path: str) -> str:
    """A request path safe for a log line: its first two segments only.

    Link routes carry the link's token in later segments (``/consultations/client/{token}``,
    ``/_linkpronto/c/{token}``); a token is a capability and, with it, a patient identifier, so it
    never reaches a log (LGPD).
    """
    parts = path.split("/")
    return "/".join(parts[:3]) + ("/…" if len(parts) > 3 else "")
