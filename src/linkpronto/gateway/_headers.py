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

# Forwarding headers a client may send and the upstream might believe: never passed on (linkpronto
# sets its own X-Forwarded-For/Proto/Host, :func:`forwarded_values`).
_X_FORWARDED: frozenset[bytes] = frozenset({
    b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
    b"x-forwarded-prefix", b"x-forwarded-server", b"x-forwarded-ssl", b"x-forwarded-scheme", b"x-real-ip",
    b"x-original-host", b"x-original-url", b"x-client-ip", b"true-client-ip", b"x-url-scheme",
})
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


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def trusted_client(peer: str | None, headers: Iterable[tuple[bytes, bytes]],
                   client_ip_header: str | None) -> str | None:
    """The client's address as far as it can be known without trusting the client; None when unknown.

    * A peer that is not loopback connected directly (``lan``): its address is the answer, whatever
      headers it sends.
    * A loopback peer is the tunnel's own hop (the agent, SDK or ssh forward runs here). Only then,
      and only when the provider in use sets a client header (``client_ip_header``, a fact of the
      provider — ``auto`` resolves to the one it chose), is that one header read: for
      ``X-Forwarded-For`` the entry the edge appended (the rightmost of the last field line), for
      ``CF-Connecting-IP`` the value Cloudflare sets (it overwrites any client copy).
    * Otherwise (ssh, ``auto`` before it chose, a provider without a client header): None. The
      caller must not lump all these clients into a bucket that can lock patients out.
    """
    peer_ip = _ip(peer) if peer else None
    if peer_ip is not None and not ipaddress.ip_address(peer_ip).is_loopback:
        return peer_ip
    if not client_ip_header:
        return None
    wanted = client_ip_header.lower().encode("latin-1")
    values = [value for name, value in headers if name == wanted]
    if not values:
        return None
    last = values[-1].decode("latin-1")
    if wanted == b"x-forwarded-for":
        last = last.split(",")[-1]
    return _ip(last)


def forwarded_values(
    scope: Scope, headers: Iterable[tuple[bytes, bytes]], *, proto: str | None = None,
    public_host: str | None = None, client_ip_header: str | None = None,
) -> RawHeaders:
    """The ``X-Forwarded-For/Proto/Host`` a request carries upstream — set by linkpronto alone.

    Every forwarding header a client sent (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``…) is
    dropped by the callers (:func:`is_x_forwarded`); these replace them (Caddy's trusted-proxies
    rule: a forwarding header is believed only from a hop we trust, and here the only trusted hop
    is the tunnel's own edge, through its one documented header).

    ``For``: :func:`trusted_client` (the peer off loopback; on loopback the provider's own header),
    else the socket peer (the tunnel's hop on this machine), never a chain the visitor wrote.
    ``Proto``: ``proto`` when the caller knows it (the request came in on the public URL), else this
    socket's scheme. ``Host``: the public URL's host when one is known, else the Host this request
    arrived with — the visitor cannot make the app believe in another one.
    """
    raw = list(headers)
    client = scope.get("client")
    peer = client[0] if client else None
    for_value = trusted_client(peer, raw, client_ip_header) or peer
    if proto is not None:
        proto_value = proto.encode("latin-1")
    else:
        proto_value = b"https" if scope.get("scheme") in ("https", "wss") else b"http"
    host = public_host.encode("latin-1") if public_host else next((v for n, v in raw if n == b"host"), None)
    out: RawHeaders = []
    if for_value:
        out.append((b"x-forwarded-for", for_value.encode("latin-1")))
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
