"""The public listener: the only socket a tunnel ever points at.

linkpronto owns exactly two path prefixes here (CONTRACT.md, :mod:`linkpronto.paths`):
``/_linkpronto/`` (its patient page ``/_linkpronto/c/{token}``, ``api/join``, ``api/device-check``,
``api/runtime-config``, ``healthz``, ``static/``, and LiveKit signalling under ``livekit/rtc…`` in local
and external modes) and ``/.well-known/linkpronto/`` (the instance probe). The path is normalised once
(:mod:`linkpronto.gateway.normalize`) before any routing decision. With an app configured every other
path belongs to the app and goes to it unchanged (normalised), marked ``X-Linkpronto-Via: public``;
without one, ``/c/{token}`` (and ``app.link_path``) is a short alias of the patient page. Admin paths
are never served here — the admin API lives on another socket.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar, cast

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkpronto import paths
from linkpronto.errors import (
    DiskFull,
    InvalidRequest,
    LinkGone,
    LinkNotFound,
    LivekitUnhealthy,
    RateLimited,
    RequestTooLarge,
    StorageFault,
    StoreUnavailable,
)
from linkpronto.gateway._headers import header
from linkpronto.gateway.guard import LinkGuard, with_cookie
from linkpronto.gateway.normalize import decoded, normalize_raw_path
from linkpronto.i18n import Text, pick_lang
from linkpronto.links import inputs
from linkpronto.stack import Stack
from linkpronto.web.bounded import BodyTooLarge, read_body
from linkpronto.web.common import client_address, error_response, public_error, request_lang
from linkpronto.web.limiter import FailedJoinLimiter

log = logging.getLogger(__name__)

PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "camera=(self), microphone=(self)",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' wss: ws: https:; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
LIVEKIT_PREFIX = paths.LIVEKIT + "/"
MAX_BODY = 64 * 1024
GoneState = Literal["expired", "revoked", "exhausted"]
GONE_STATES = ("expired", "revoked", "exhausted")
M = TypeVar("M", bound=BaseModel)


#: The patient's real WebRTC check gets its probe-room token here (patient.js).
MEDIA_CHECK_TOKEN = paths.PREFIX + "/api/media-check-token"


@dataclass
class PublicDeps:
    stack: Stack
    rtc_proxy: ASGIApp | None
    app_proxy: ASGIApp | None
    #: The header the tunnel in use sets with the client's address (``TunnelProvider.facts``).
    client_ip_header: Callable[[], str | None]


def _link_path_regex(template: str) -> re.Pattern[str]:
    head, _, tail = template.partition("{token}")
    return re.compile("^" + re.escape(head) + r"(?P<token>[A-Za-z0-9_\-]{1,200})" + re.escape(tail) + "$")


def _build_guard(stack: Stack) -> LinkGuard:
    return LinkGuard(
        stack.settings.app.protected_routes,
        stack.secrets.instance_secret,
        stack.issuer.guard_lookup,
        stack.issuer.guard_use,
        secure=lambda: (stack.public_url or "").lower().startswith("https://"),
    )


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def build_public_app(deps: PublicDeps) -> ASGIApp:
    stack = deps.stack
    settings = stack.settings
    limiter = FailedJoinLimiter(settings.server.rate_limit_storage, settings.server.join_failures_per_minute)
    stack.side_problems.append(lambda: [p for p in (limiter.problem(),) if p is not None])
    link_re = _link_path_regex(settings.app.link_path)
    guard = _build_guard(stack) if deps.app_proxy is not None and settings.app.protected_routes else None
    own_page_re = _link_path_regex(paths.PATIENT_PAGE)
    short_re = _link_path_regex(paths.SHORT_PATIENT_PAGE)

    def addr(request: Request) -> str | None:
        return client_address(request, deps.client_ip_header())

    def too_many(request: Request) -> JSONResponse:
        return error_response(RateLimited(), 429, request_lang(request))

    async def patient_page(request: Request, token: str) -> Response:
        from linkpronto.web import pages

        lang = request_lang(request)
        if token == paths.PROBE_TOKEN:  # the verification ladder's own request
            html = pages.patient_html(state="not_found", consultation_type=None, lang=lang)
            return HTMLResponse(html, status_code=404, headers=PAGE_HEADERS)
        row, state = await stack.issuer.resolve(token)
        # Only guesses count (an unknown token); a live link's page is never limited, and a gone one
        # always gets its true page (a patient coming back to an old link, even behind an ssh tunnel
        # where every client shares one bucket). The failure past the limit is the 429.
        if (row is None or state == "preparing") and not limiter.fail(addr(request)):
            return too_many(request)
        if row is None or state in ("preparing", "failed"):
            html = pages.patient_html(state="not_found", consultation_type=None, lang=lang)
            return HTMLResponse(html, status_code=404, headers=PAGE_HEADERS)
        if state in GONE_STATES:
            gone = cast(GoneState, state)
            html = pages.patient_html(state=gone, consultation_type=row.consultation_type, lang=lang)
            return HTMLResponse(html, status_code=410, headers=PAGE_HEADERS)
        html = pages.patient_html(state="ok", consultation_type=row.consultation_type, lang=lang)
        response = HTMLResponse(html, headers=PAGE_HEADERS)
        if guard is not None:
            cookie = guard.page_cookie(row.id, row.expires_at.timestamp(), request.scope["headers"])
            response.headers.append("set-cookie", cookie)
        return response

    async def link_route(request: Request) -> Response:
        m = own_page_re.match(request.url.path)
        if m is None:
            return PlainTextResponse("Not Found", status_code=404)
        return await patient_page(request, m.group("token"))

    def body_too_large(request: Request) -> JSONResponse:
        response = error_response(RequestTooLarge(), 413, request_lang(request))
        response.headers["Connection"] = "close"
        return response

    def bad_request(request: Request, field: str) -> JSONResponse:
        return error_response(InvalidRequest.field(field), 422, request_lang(request))

    async def read_model(request: Request, model: type[M]) -> M | Response:
        try:
            body = await read_body(request.receive, MAX_BODY)
        except BodyTooLarge:
            return body_too_large(request)
        parsed, bad = inputs.parse(model, body)
        if parsed is None:
            return bad_request(request, ", ".join(bad))
        return parsed

    async def join(request: Request) -> Response:
        lang = request_lang(request)
        req = await read_model(request, inputs.JoinRequest)
        if isinstance(req, Response):
            return req
        try:
            # A live link joins whatever the limiter says; LiveKit must answer before a use counts.
            grant = await stack.issuer.join(req.token, req.display_name)
        except LinkNotFound as exc:
            if not limiter.fail(addr(request)):
                return too_many(request)
            return error_response(exc, 404, lang)
        except LinkGone as exc:  # a real (former) link: its true answer, never limited
            return error_response(exc, 410, lang)
        except (LivekitUnhealthy, StorageFault) as exc:
            return error_response(public_error(exc), 503, lang, retry_after=5)
        stack.touch()
        return JSONResponse(grant.to_json(), headers={"Cache-Control": "no-store"})

    async def device_check(request: Request) -> Response:
        req = await read_model(request, inputs.DeviceCheckRequest)
        if isinstance(req, Response):
            return req
        stored = inputs.stored_device_check(req.result)
        if stored is None:
            return bad_request(request, "result (too large)")
        try:
            ok = await stack.issuer.record_device_check(req.token, stored)
        except DiskFull as exc:  # as a create does: 507, nothing lost, the patient may go on
            return error_response(public_error(exc), 507, request_lang(request))
        except StorageFault as exc:
            return error_response(public_error(exc), 503, request_lang(request), retry_after=5)
        if not ok:
            if not limiter.fail(addr(request)):
                return too_many(request)
            return error_response(LinkNotFound(), 404, request_lang(request))
        stack.poke()
        return Response(status_code=204)

    async def media_check_token(request: Request) -> Response:
        """A probe-room token for the patient's real WebRTC check: only for a live link, limited like a
        join, and never a use (media/patient_check.py)."""
        from linkpronto.media.patient_check import media_check_grant

        lang = request_lang(request)
        req = await read_model(request, inputs.MediaCheckTokenRequest)
        if isinstance(req, Response):
            return req
        row, state = await stack.issuer.resolve(req.token)
        if row is None or state in ("preparing", "failed"):
            if not limiter.fail(addr(request)):
                return too_many(request)
            return error_response(LinkNotFound(), 404, lang)
        if state in GONE_STATES:
            return error_response(LinkGone(state), 410, lang)
        creds = stack.credentials()
        if creds is None:
            not_ready = LivekitUnhealthy(Text("O servidor de vídeo ainda não está pronto.",
                                              "The video server is not ready yet."))
            return error_response(not_ready, 503, lang, retry_after=5)
        return JSONResponse(media_check_grant(creds.api_key, creds.api_secret, creds.livekit_url),
                            headers={"Cache-Control": "no-store"})

    async def runtime_config(request: Request) -> Response:
        return JSONResponse(
            {"site_url": stack.public_url, "livekit_url": stack.livekit_browser_url},
            headers={"Cache-Control": "no-store"},
        )

    async def probe(request: Request) -> Response:
        nonce = request.query_params.get("nonce", "")
        if not nonce or len(nonce) > 128:
            return PlainTextResponse("nonce required", status_code=400)
        return JSONResponse(
            {"instance": stack.secrets.instance_id, "nonce": nonce, "mac": stack.secrets.probe_mac(nonce)},
            headers={"Cache-Control": "no-store"},
        )

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    async def not_found(request: Request) -> Response:
        return PlainTextResponse("Not Found", status_code=404)

    from linkpronto.web.assets import STATIC_DIR

    routes = [
        Route(paths.HEALTHZ, healthz),
        Route(paths.PROBE, probe),
        Route(paths.JOIN, join, methods=["POST"]),
        Route(paths.DEVICE_CHECK, device_check, methods=["POST"]),
        Route(MEDIA_CHECK_TOKEN, media_check_token, methods=["POST"]),
        Route(paths.RUNTIME_CONFIG, runtime_config),
        *([Route(paths.LIVEKIT_WEBHOOK, stack.events.webhook, methods=["POST"])]
          if settings.livekit.mode != "local" else []),  # local LiveKit posts to the admin listener
        Mount(paths.STATIC, app=StaticFiles(directory=STATIC_DIR, check_dir=False)),
        Route(paths.PREFIX + "/c/{token}", link_route, methods=["GET", "HEAD"]),
        Route("/{path:path}", not_found, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]),
    ]
    async def store_unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreUnavailable)
        return error_response(public_error(exc), 503, request_lang(request), retry_after=5)

    own = Starlette(routes=routes, exception_handlers={StoreUnavailable: store_unavailable})

    def alias(path: str) -> str | None:
        """Without an app: ``/c/{token}`` (and ``app.link_path``) → linkpronto's own patient page."""
        m = short_re.match(path) or link_re.match(path)
        return paths.PATIENT_PAGE.replace("{token}", m.group("token")) if m else None

    async def refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await PlainTextResponse(text, status_code=status)(scope, receive, send)

    async def guarded_send(scope: Scope, send: Send, path: str) -> Send | None:
        """The guard's part of a request to the app: None when it answered (refused) itself."""
        assert guard is not None
        raw = scope["headers"]
        if guard.protects(path):
            decision = await guard.check(raw)
            if not decision.allow:
                assert decision.error is not None
                log.info("guard refused %s: %s", scope.get("method", "WS"), decision.error.code)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    lang = pick_lang(None, (header(raw, b"accept-language") or b"").decode("latin-1"))
                    await error_response(decision.error, decision.status, lang)(scope, _no_body, send)
                return None
            return with_cookie(send, decision.set_cookie) if decision.set_cookie else send
        m = link_re.match(path)
        if m is not None and scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            row, state = await stack.issuer.resolve(m.group("token"))
            if row is not None and state == "ready":
                return with_cookie(send, guard.page_cookie(row.id, row.expires_at.timestamp(), raw))
        return send

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await own(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
        normal = normalize_raw_path(raw)
        if normal is None:
            await refuse(scope, receive, send, 400, "Bad Request")
            return
        path = decoded(normal)
        scope = {**scope, "path": path, "raw_path": normal}
        if paths.is_own(path):
            if path.startswith(LIVEKIT_PREFIX):
                if deps.rtc_proxy is None:
                    await refuse(scope, receive, send, 404, "Not Found")
                    return
                # LiveKit's own paths (/rtc, /rtc/v1, /rtc/validate): the proxy's allow-list applies.
                inner = path[len(paths.LIVEKIT):]
                await deps.rtc_proxy({**scope, "path": inner, "raw_path": normal[len(paths.LIVEKIT):]},
                                     receive, send)
                return
            await own(scope, receive, send)
            return
        if deps.app_proxy is not None:
            if guard is not None:
                guarded = await guarded_send(scope, send, path)
                if guarded is None:
                    return
                send = guarded
            await deps.app_proxy(scope, receive, send)
            return
        target = alias(path)
        if target is not None:
            await own({**scope, "path": target, "raw_path": target.encode("latin-1")}, receive, send)
            return
        if path == "/" and scope["type"] == "http":
            # No app: the root explains what this address is, without revealing anything.
            await PlainTextResponse("linkpronto")(scope, receive, send)
            return
        await refuse(scope, receive, send, 404, "Not Found")

    return dispatch
