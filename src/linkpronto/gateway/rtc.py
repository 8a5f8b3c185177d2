"""LiveKit signalling through the public listener: ``/rtc`` and ``/rtc/v1`` (WebSocket) and their
HTTP ``/validate``, and nothing else of LiveKit.

LiveKit's own HTTP surface also serves ``/twirp/*`` (the RoomService API: anyone holding a token
with admin grants could kick participants) and, in ``--dev``, unauthenticated ``/debug/*``. The
allow-list is :data:`RTC_PATHS`, matched exactly, plus — only when the proxy is given the stack's key
pair — ``POST /twirp/livekit.RoomService/<Method>`` carrying a JWT this gateway verified itself
(gateway/twirp_auth.py: LiveKit's own auth model, as LiveKit Cloud exposes it). Anything else, and
``/debug`` always, is a 404 answered without touching LiveKit.

livekit-client connects to ``wss://<host>/rtc`` (``/rtc/v1`` since 2.17) with the access token in
the query string, and on failure calls ``/rtc/validate`` (``/rtc/v1/validate``) to read the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from linkpronto.gateway._headers import (
    HOP_BY_HOP,
    RawHeaders,
    Upstream,
    connection_tokens,
    forwarded_values,
    is_x_forwarded,
    loggable_path,
    parse_upstream,
)
from linkpronto.gateway._http import HttpForwarder, UpstreamUnavailable, send_simple
from linkpronto.gateway._ws import bridge, deny, upstream_ws_headers
from linkpronto.gateway.twirp_auth import twirp_allowed
from linkpronto.i18n import Text, pick_lang

log = logging.getLogger("linkpronto.gateway")

RTC_PATHS = frozenset({"/rtc", "/rtc/v1", "/rtc/validate", "/rtc/v1/validate"})

_NOT_FOUND = Text("Não encontrado.", "Not Found")
_NO_LIVEKIT = Text(
    "O LiveKit não está disponível por este endereço agora.",
    "LiveKit is not available through this address right now.",
)
_LIVEKIT_DOWN = Text("O LiveKit não está respondendo.", "LiveKit is not answering.")
_TEXT = b"text/plain; charset=utf-8"


def _body(scope: Scope, text: Text) -> bytes:
    """``text`` in the request's language (``?lang=``, ``Accept-Language``, ``LINKPRONTO_LANG``)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("lang", [None])[0]
    accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept-language"), None)
    return text.get(pick_lang(query, accept)).encode("utf-8")


class RtcProxy:
    """Raw ASGI app forwarding LiveKit signalling to ``upstream()`` (e.g. ``http://127.0.0.1:7880``).

    ``upstream`` is called per request so a restarted or re-addressed LiveKit is picked up at once;
    when it returns ``None`` (LiveKit stopped, or cloud mode) the answer is 503.
    """

    def __init__(self, upstream: Callable[[], str | None],
                 key_pair: Callable[[], tuple[str, str]] | None = None) -> None:
        self._upstream = upstream
        self._key_pair = key_pair  # (api_key, api_secret): RoomService with a verified JWT may pass
        # /validate answers quickly; a LiveKit that stalls longer than this is reported as 504.
        self._http = HttpForwarder(read_timeout=10.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return
        if scope["path"] not in RTC_PATHS and not twirp_allowed(scope, self._key_pair):
            if kind == "http":
                await send_simple(send, 404, _body(scope, _NOT_FOUND))
            else:
                await _deny_ws(scope, receive, send, 404, _body(scope, _NOT_FOUND))
            return
        target = self._upstream()
        if not target:
            if kind == "http":
                await send_simple(send, 503, _body(scope, _NO_LIVEKIT))
            else:
                await _deny_ws(scope, receive, send, 503, _body(scope, _NO_LIVEKIT))
            return
        upstream = parse_upstream(target)
        if kind == "websocket":
            await self._websocket(scope, receive, send, upstream)
        else:
            await self._request(scope, receive, send, upstream)

    async def _request(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream) -> None:
        headers = _upstream_headers(scope, upstream)
        try:
            await self._http.forward(scope, receive, send, upstream, headers)
        except UpstreamUnavailable as exc:
            log.warning("LiveKit unavailable for %s %s: %s", scope["method"], loggable_path(scope["path"]), exc.reason)
            await send_simple(send, exc.status, _body(scope, _LIVEKIT_DOWN))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream) -> None:
        raw: RawHeaders = scope["headers"]
        headers = upstream_ws_headers([(n, v) for n, v in raw if not is_x_forwarded(n)])
        headers.extend((n.decode("latin-1"), v.decode("latin-1")) for n, v in forwarded_values(scope, raw))
        ua = _header_str(raw, b"user-agent")
        if ua is not None:
            headers.append(("User-Agent", ua))
        await bridge(
            scope,
            receive,
            send,
            upstream,
            headers=headers,
            host_header=upstream.authority.decode("latin-1"),
            origin=_header_str(raw, b"origin"),
            unavailable_body=_body(scope, _LIVEKIT_DOWN),
            unavailable_type=_TEXT,
        )


def _header_str(headers: RawHeaders, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _upstream_headers(scope: Scope, upstream: Upstream) -> RawHeaders:
    raw: RawHeaders = scope["headers"]
    drop = connection_tokens(raw) | HOP_BY_HOP
    out: RawHeaders = [(b"host", upstream.authority)]
    out.extend((n, v) for n, v in raw if n not in drop and n != b"host" and not is_x_forwarded(n))
    out.extend(forwarded_values(scope, raw))
    return out


async def _deny_ws(scope: Scope, receive: Receive, send: Send, status: int, body: bytes) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await deny(scope, send, status, body, _TEXT)
