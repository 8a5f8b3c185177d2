"""Reverse proxy from the public listener to the user's own app (e.g. ``next dev`` on port 3001).

Everything passes: any method, streamed bodies both ways (SSE and chunked answers are relayed chunk by
chunk), every ``Set-Cookie``, redirects as redirects (never followed; a ``Location`` naming the
upstream is rewritten to the public origin), WebSocket upgrades (Next.js HMR on
``/_next/webpack-hmr``). Hop-by-hop headers are dropped and ``X-Forwarded-For/Proto/Host`` tell the
app the truth about the visitor. Every request carries ``X-Linkpronto-Via: public`` (a client's own
copy is dropped): everything on this listener came from the internet, so the app can refuse work that
must not be done for anonymous callers (such as creating consultation links).

Why Host and Origin are rewritten
---------------------------------
``next dev`` (16.x, ``server/lib/router-utils/block-cross-site-dev.ts``) answers 403 to requests for
``/_next/*`` and ``/__nextjs*`` and refuses the HMR WebSocket when the request carries an ``Origin``
whose hostname is not ``localhost``, ``*.localhost``, the ``-H`` hostname or an ``allowedDevOrigins``
entry (and a ``no-cors``/``cross-site`` request whose ``Referer`` is not). Through a tunnel the page
is served but its scripts and HMR are refused: it never hydrates. So for a *same-origin* request
(``Origin`` equals the host the browser asked for, or the public URL) the upstream is shown the
request exactly as if the browser had opened it directly: ``Host: localhost:3001`` and
``Origin: http://localhost:3001``. Requests from a foreign origin keep their ``Origin`` and stay
subject to Next.js's protection. Keeping Host and Origin consistent also satisfies the Server
Actions CSRF check (``Origin`` host must equal ``Host`` or ``X-Forwarded-Host``).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from linkpronto.gateway._headers import (
    HOP_BY_HOP,
    RawHeaders,
    Upstream,
    connection_tokens,
    forwarded_values,
    header,
    is_x_forwarded,
    loggable_path,
    normalize_authority,
    parse_upstream,
)
from linkpronto.gateway._http import HttpForwarder, UpstreamUnavailable, send_simple
from linkpronto.gateway._ws import bridge, deny, upstream_ws_headers
from linkpronto.i18n import Text

log = logging.getLogger("linkpronto.gateway")

APP_DOWN_TITLE = Text("O aplicativo não está respondendo", "The app is not answering")
APP_DOWN_BODY = Text(
    "O serviço está no ar, mas o aplicativo por trás dele não respondeu. "
    "Aguarde alguns segundos e recarregue a página.",
    "The service is up, but the app behind it did not answer. Wait a few seconds and reload the page.",
)
APP_NOT_RUNNING_BODY = Text(
    "O aplicativo ainda não foi iniciado. Aguarde alguns segundos e recarregue a página.",
    "The app has not been started yet. Wait a few seconds and reload the page.",
)

_HTML = b"text/html; charset=utf-8"
VIA_HEADER = b"x-linkpronto-via"
VIA_PUBLIC = b"public"
#: The per-start secret of a caller on this computer (app_env: LINKPRONTO_LOCAL_SECRET): never from the public side.
LOCAL_HEADER = b"x-linkpronto-local"


def error_page(body: Text, status: int) -> bytes:
    """A small page in both languages (the visitor may be a patient on a phone, in any language)."""
    title_pt, title_en = html.escape(APP_DOWN_TITLE.pt), html.escape(APP_DOWN_TITLE.en)
    return (
        '<!doctype html><html lang="pt-BR"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title_pt} ({status})</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "color:#222}h1{font-size:1.3rem}p.en{color:#555}</style></head><body>"
        f"<h1>{title_pt}</h1><p>{html.escape(body.pt)}</p>"
        f'<h1 lang="en">{title_en}</h1><p class="en" lang="en">{html.escape(body.en)}</p>'
        f"<p><small>HTTP {status}</small></p></body></html>"
    ).encode()


_PAGE_DOWN = {status: error_page(APP_DOWN_BODY, status) for status in (502, 504)}
_PAGE_NOT_RUNNING = error_page(APP_NOT_RUNNING_BODY, 503)


class AppProxy:
    """Raw ASGI app forwarding to ``upstream()`` (e.g. ``http://127.0.0.1:3001``).

    ``upstream()`` returning ``None`` (no app, or it is stopped) answers 503; an upstream that does not
    answer, 502. ``public_url()`` is the current public origin (e.g. ``https://abc.trycloudflare.com``),
    used to recognise same-origin requests and to rewrite ``Location`` headers back.
    """

    def __init__(self, upstream: Callable[[], str | None], public_url: Callable[[], str | None],
                 client_ip_header: Callable[[], str | None] = lambda: None) -> None:
        self._upstream = upstream
        self._public_url = public_url
        self._client_ip_header = client_ip_header  # the tunnel provider's own client header, if any
        # No read timeout: an SSE stream or a long poll may legitimately stay silent for minutes.
        self._http = HttpForwarder(read_timeout=None)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return
        target = self._upstream()
        if not target:
            if kind == "http":
                await send_simple(send, 503, _PAGE_NOT_RUNNING, _HTML, [(b"retry-after", b"5")])
            else:
                message = await receive()
                if message["type"] == "websocket.connect":
                    await deny(scope, send, 503, _PAGE_NOT_RUNNING, _HTML)
            return
        upstream = parse_upstream(target)
        raw: RawHeaders = scope["headers"]
        public = _public_origin(self._public_url())
        request_host = header(raw, b"host")
        origin = header(raw, b"origin")
        same_origin = origin is not None and _is_same_origin(origin, request_host, public)
        # Through the public URL the scheme is the public one (https), whatever the tunnel says.
        on_public = (public is not None and request_host is not None
                     and normalize_authority(request_host.decode("latin-1")) == public[1])
        proto = public[0] if on_public and public is not None else None
        forwarded = forwarded_values(scope, raw, proto=proto, public_host=public[1] if public else None,
                                     client_ip_header=self._client_ip_header())
        if kind == "websocket":
            await self._websocket(scope, receive, send, upstream, same_origin, forwarded)
            return
        headers = _upstream_headers(raw, upstream, same_origin, forwarded)
        reply_origin = _reply_origin(scope, raw, request_host, public)

        def rewrite_location(out: RawHeaders) -> RawHeaders:
            return _rewrite_location(out, upstream, reply_origin)

        try:
            await self._http.forward(scope, receive, send, upstream, headers, response_hook=rewrite_location)
        except UpstreamUnavailable as exc:
            log.warning("app unavailable for %s %s: %s", scope["method"], loggable_path(scope["path"]), exc.reason)
            await send_simple(send, exc.status, _PAGE_DOWN.get(exc.status, _PAGE_DOWN[502]), _HTML,
                              [(b"retry-after", b"5")])

    async def _websocket(
        self, scope: Scope, receive: Receive, send: Send, upstream: Upstream, same_origin: bool,
        forwarded: RawHeaders,
    ) -> None:
        raw: RawHeaders = scope["headers"]
        headers = upstream_ws_headers([(n, v) for n, v in raw
                                       if not is_x_forwarded(n) and n not in (VIA_HEADER, LOCAL_HEADER)])
        headers.extend((n.decode("latin-1"), v.decode("latin-1")) for n, v in forwarded)
        headers.append((VIA_HEADER.decode("latin-1"), VIA_PUBLIC.decode("latin-1")))
        ua = header(raw, b"user-agent")
        if ua is not None:
            headers.append(("User-Agent", ua.decode("latin-1")))
        origin = header(raw, b"origin")
        sent_origin = upstream.origin if same_origin else (origin.decode("latin-1") if origin else None)
        await bridge(
            scope,
            receive,
            send,
            upstream,
            headers=headers,
            host_header=upstream.authority.decode("latin-1"),
            origin=sent_origin,
            unavailable_body=_PAGE_DOWN[502],
            unavailable_type=_HTML,
        )


def _public_origin(url: str | None) -> tuple[str, str] | None:
    """``https://x.example/anything`` → ``("https", "x.example")`` (authority normalised)."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return parts.scheme.lower(), normalize_authority(parts.netloc)


def _is_same_origin(origin: bytes, request_host: bytes | None, public: tuple[str, str] | None) -> bool:
    if origin == b"null":
        return False
    parts = urlsplit(origin.decode("latin-1"))
    if not parts.netloc:
        return False
    authority = normalize_authority(parts.netloc)
    if request_host is not None and authority == normalize_authority(request_host.decode("latin-1")):
        return True
    return public is not None and authority == public[1]


def _upstream_headers(raw: RawHeaders, upstream: Upstream, same_origin: bool, forwarded: RawHeaders) -> RawHeaders:
    drop = connection_tokens(raw) | HOP_BY_HOP
    out: RawHeaders = [(b"host", upstream.authority)]
    for name, value in raw:
        if name in drop or name == b"host" or name in (VIA_HEADER, LOCAL_HEADER) or is_x_forwarded(name):
            continue
        if name == b"origin" and same_origin:
            out.append((b"origin", upstream.origin.encode("latin-1")))
            continue
        out.append((name, value))
    out.extend(forwarded)
    out.append((VIA_HEADER, VIA_PUBLIC))
    return out


def _reply_origin(scope: Scope, raw: RawHeaders, request_host: bytes | None,
                  public: tuple[str, str] | None) -> str | None:
    """The origin the browser used, to which an upstream ``Location`` is pointed back."""
    if request_host is None:
        return f"{public[0]}://{public[1]}" if public else None
    host = request_host.decode("latin-1")
    if public is not None and normalize_authority(host) == public[1]:
        return f"{public[0]}://{public[1]}"
    proto = header(raw, b"x-forwarded-proto")
    if proto is not None:
        scheme = proto.decode("latin-1").split(",")[0].strip().lower()
    else:
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return f"{scheme}://{host}"


def _rewrite_location(headers: RawHeaders, upstream: Upstream, reply_origin: str | None) -> RawHeaders:
    if reply_origin is None:
        return headers
    for index, (name, value) in enumerate(headers):
        if name != b"location":
            continue
        location = value.decode("latin-1")
        lowered = location.lower()
        for candidate in upstream.connect_origins:
            if lowered.startswith(candidate) and (
                len(location) == len(candidate) or location[len(candidate)] in "/?#"
            ):
                rest = location[len(candidate):] or "/"
                headers[index] = (b"location", (reply_origin + rest).encode("latin-1"))
                break
    return headers
