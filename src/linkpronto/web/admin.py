"""The admin listener (``127.0.0.1:<admin_port>``): the dashboard and the API of CONTRACT.md.

A request is served only when its ``Host`` is this listener's own (``127.0.0.1:<port>`` or
``localhost:<port>``: DNS-rebinding pages are refused) and it carries the admin bearer token, or the
dashboard's session cookie (from the one-time URL ``up`` prints; see :mod:`linkpronto.web.session`)
— with a same-origin ``Origin`` on anything that changes state. No header alone grants anything.
"""
from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkpronto.errors import (
    AccessDenied,
    DiskFull,
    ForbiddenHost,
    ForbiddenOrigin,
    InvalidRequest,
    LinkNotFound,
    LinkprontoError,
    StoreUnavailable,
    Unauthorized,
)
from linkpronto.events.hub import next_presence, presence_sse
from linkpronto.events.webhook import ADMIN_PATH as WEBHOOK_PATH
from linkpronto.i18n import Text
from linkpronto.links.service import LinkStatus, qr_svg
from linkpronto.schema import CreateLinkRequest
from linkpronto.stack import STATUS_HEARTBEAT_S, Stack, StackState
from linkpronto.web.common import error_response, request_lang
from linkpronto.web.session import (
    SESSION_FRAGMENT,
    SESSION_HEADER,
    SESSION_TTL_S,
    DashboardSessions,
    cookie_name,
)

SSE_HEARTBEAT_S = STATUS_HEARTBEAT_S
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOGIN_USED = Text(
    "Este endereço de acesso já foi usado ou expirou. Para um endereço novo, rode no terminal: "
    "linkpronto dashboard",
    "This sign-in address was already used or has expired. For a new address, run in a terminal: "
    "linkpronto dashboard",
)


CreateLink = CreateLinkRequest


def _field_errors(exc: RequestValidationError) -> tuple[list[str], list[dict[str, Any]]]:
    names: list[str] = []
    details: list[dict[str, Any]] = []
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        name = ".".join(loc) or "body"
        names.append(name)
        details.append({"field": name, "message": str(e.get("msg", ""))})
    return names, details


_EXTRA_PAGE_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


LOGOUT_PATH = "/api/logout"
BEARER_ONLY_PATH = "/api/dashboard-login"


class AdminGuard:
    """Pure ASGI guard in front of the admin app (CONTRACT.md, "Admin API").

    1. ``Host`` must be this listener's own (``127.0.0.1:<port>`` / ``localhost:<port>``): a
       DNS-rebinding page is refused.
    2. ``GET /?token=<one-time login>`` trades the token for the session cookie and redirects to ``/``.
    3. ``/api/*`` needs ``Authorization: Bearer <admin token>``, or the session cookie together with
       its ``X-Linkpronto-Session`` secret — and with those, a state-changing request must carry a
       same-origin ``Origin``. ``POST /api/dashboard-login`` is bearer-only; ``POST /api/logout``
       ends the session. No header alone grants
       anything. Pages and static files carry no data and need neither.

    (A ``BaseHTTPMiddleware`` costs a task and a stream per request; this costs a few comparisons.)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        port_getter: Callable[[], int],
        token_path: str,
        sessions: DashboardSessions | None = None,
        extra_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.token = token.encode("utf-8")
        self.port_getter = port_getter
        self.token_path = token_path
        self.sessions = sessions or DashboardSessions()
        self.extra_hosts = extra_hosts  # server.admin_hosts (linkpronto serve --admin-bind)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        port = self.port_getter()
        host = headers.get("host", "")
        if host not in (f"127.0.0.1:{port}", f"localhost:{port}") and host not in self.extra_hosts:
            await self._deny(scope, receive, send, ForbiddenHost())
            return
        path: str = scope["path"]
        if path == WEBHOOK_PATH:  # LiveKit's webhooks: no admin token, a LiveKit signature instead
            await self.app(scope, receive, send)
            return
        if path == "/" and scope["method"] in ("GET", "HEAD") and b"token=" in scope.get("query_string", b""):
            await self._login(scope, receive, send, port)
            return
        if not path.startswith("/api/"):
            await self.app(scope, receive, _with_headers(send))
            return
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            if not hmac.compare_digest(auth[7:].strip().encode("utf-8"), self.token):
                await self._deny(scope, receive, send, Unauthorized())
            elif path == LOGOUT_PATH:
                await JSONResponse({"ok": True})(scope, receive, send)  # a bearer holds no session
            else:
                await self.app(scope, receive, send)
            return
        # A session is the cookie *and* the secret only this origin's page holds (web/session.py): the
        # cookie alone also reaches pages other accounts serve on other ports of this host.
        session = _cookie(headers, cookie_name(port))
        if session and self.sessions.valid(session, headers.get(SESSION_HEADER, "")):
            if scope["method"] not in SAFE_METHODS and headers.get("origin") != f"http://{host}":
                await self._deny(scope, receive, send, ForbiddenOrigin())
            elif path == BEARER_ONLY_PATH:  # a session never mints another one-time URL
                await self._deny(scope, receive, send, Unauthorized())
            elif path == LOGOUT_PATH:
                self.sessions.end(session)
                response = JSONResponse({"ok": True}, headers={"Cache-Control": "no-store"})
                response.delete_cookie(cookie_name(port), path="/", httponly=True, samesite="strict")
                await response(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        await self._deny(scope, receive, send, Unauthorized())

    async def _login(self, scope: Scope, receive: Receive, send: Send, port: int) -> None:
        from urllib.parse import parse_qs, urlencode

        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        login = (qs.get("token") or [""])[0]
        redeemed = self.sessions.redeem(login) if login else None
        if redeemed is None and self.sessions.known_cookie(_cookie(Headers(scope=scope), cookie_name(port))):
            # The address was used already, by this very browser (a bookmark, a reload): it is signed in.
            await RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})(scope, receive, send)
            return
        if redeemed is None:
            lang = request_lang(HTTPConnection(scope))
            text = _LOGIN_USED.get(lang)
            await HTMLResponse(
                f"<!doctype html><meta charset=utf-8><title>linkpronto</title><p>{text}</p>",
                status_code=401,
                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
            )(scope, receive, send)
            return
        # Back to the dashboard without the token, keeping the rest of the query (``lang``…).
        rest = urlencode([(k, v) for k, values in qs.items() if k != "token" for v in values])
        session, secret = redeemed
        # The secret rides in the fragment: browsers never send it to a server; the page stores it.
        target = ("/?" + rest if rest else "/") + f"#{SESSION_FRAGMENT}={secret}"
        response = RedirectResponse(
            target, status_code=303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        )
        response.set_cookie(
            cookie_name(port), session, httponly=True, samesite="strict", path="/", max_age=int(SESSION_TTL_S)
        )
        await response(scope, receive, send)

    async def _deny(self, scope: Scope, receive: Receive, send: Send, denied: AccessDenied) -> None:
        lang = request_lang(HTTPConnection(scope))
        fix = Text(
            f"Envie 'Authorization: Bearer <token>' com o token de {self.token_path}.",
            f"Send 'Authorization: Bearer <token>' with the token in {self.token_path}.",
        )
        body = {"error": {"code": denied.code, "message": denied.message(lang), "fix": fix.get(lang)}}
        await JSONResponse(body, status_code=denied.status)(scope, receive, send)


def _cookie(headers: Headers, name: str) -> str:
    from http.cookies import CookieError, SimpleCookie

    raw = headers.get("cookie", "")
    if not raw:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in _EXTRA_PAGE_HEADERS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def build_admin_app(
    stack: Stack,
    *,
    port_getter: Callable[[], int],
    shutdown: Callable[[], Awaitable[None]] | None = None,
    sessions: DashboardSessions | None = None,
) -> ASGIApp:
    app = FastAPI(title="linkpronto admin", docs_url=None, redoc_url=None, openapi_url=None)
    guard_sessions = sessions or DashboardSessions()

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        names, details = _field_errors(exc)
        lang = request_lang(request)
        text = Text(
            "Campos inválidos: " + "; ".join(f"{d['field']} ({d['message']})" for d in details),
            "Invalid fields: " + "; ".join(f"{d['field']} ({d['message']})" for d in details),
        )
        err = InvalidRequest(
            text, fix=Text("Corrija os campos: " + ", ".join(names), "Correct the fields: " + ", ".join(names))
        )
        body = {"error": err.to_problem(lang), "fields": details}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(LinkNotFound)
    async def link_not_found(request: Request, exc: LinkNotFound) -> JSONResponse:
        return error_response(exc, 404, request_lang(request))

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return error_response(exc, 503, request_lang(request))

    # -- status -------------------------------------------------------------------------------------
    @app.get("/api/status")
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(stack.status_json(request_lang(request)))

    @app.get("/api/status/stream")
    async def status_stream(request: Request) -> StreamingResponse:
        lang = request_lang(request)

        async def events() -> AsyncIterator[bytes]:
            q = stack.subscribe_status()
            presence = stack.events.subscribe()
            try:
                yield _sse(stack.status_json(lang))
                sent = asyncio.get_running_loop().time()
                while True:
                    # A presence change (patient waiting…) goes out at once as its own event; the
                    # status still goes out at least every SSE_HEARTBEAT_S.
                    left = max(0.0, SSE_HEARTBEAT_S - (asyncio.get_running_loop().time() - sent))
                    if (change := await next_presence(presence, q, left)) is not None:
                        yield presence_sse(change)
                        continue
                    # Re-render in the client's language (the queued document is only the trigger).
                    yield _sse(stack.status_json(lang))
                    sent = asyncio.get_running_loop().time()
            finally:
                stack.unsubscribe_status(q)
                stack.events.unsubscribe(presence)

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- LiveKit webhooks (signed; exempt from the admin token in AdminGuard) -------------------------
    app.add_api_route(WEBHOOK_PATH, stack.events.webhook, methods=["POST"], include_in_schema=False)

    # -- links --------------------------------------------------------------------------------------
    async def _create(body: CreateLink) -> tuple[Any, str]:
        return await stack.issuer.create(
            professional_id=body.professional_id,
            client_id=body.client_id,
            consultation_type=body.consultation_type,
            expires_in_s=body.expires_in_s,
            max_uses=body.max_uses,
            room=body.room,
            wait_s=body.wait_s,
        )

    @app.post("/api/consultation-links")
    async def create_link(body: CreateLink, request: Request) -> Response:
        lang = request_lang(request)
        try:
            row, _token = await _create(body)
        except LinkprontoError as exc:
            # A full disk is 507 Insufficient Storage; anything else keeps the stack's 503.
            return error_response(exc, DiskFull.status if isinstance(exc, DiskFull) else 503, lang)
        link = stack.issuer.link(row, lang)
        if link.status == LinkStatus.READY:
            return _json(link, status_code=201)
        return _json(link, status_code=202, headers={"Location": f"/api/consultation-links/{row.id}"})

    @app.get("/api/consultation-links")
    async def list_links(
        request: Request,
        professional_id: str | None = Query(default=None),
        status: str | None = Query(default=None),
    ) -> Response:
        lang = request_lang(request)
        rows = await stack.issuer.list(professional_id)
        items = [stack.issuer.link(r, lang) for r in rows]
        if status:
            wanted = set(status.split(","))
            items = [i for i in items if i.status in wanted]
        return Response(b'{"items":[' + b",".join(i.model_dump_json().encode() for i in items) + b"]}",
                        media_type="application/json")

    @app.get("/api/consultation-links/{link_id}")
    async def get_link(link_id: str, request: Request) -> Response:
        row = await stack.issuer.get(link_id)
        return _json(stack.issuer.link(row, request_lang(request)))

    @app.get("/api/consultation-links/{link_id}/qr.svg")
    async def link_qr(link_id: str) -> Response:
        url = stack.issuer.url_for(await stack.issuer.get(link_id))
        if url is None:
            return Response(status_code=404)
        return Response(qr_svg(url), media_type="image/svg+xml")

    @app.delete("/api/consultation-links/{link_id}")
    async def revoke_link(link_id: str, request: Request) -> JSONResponse:
        row = await stack.issuer.revoke(link_id)
        return JSONResponse(stack.issuer.document(row, request_lang(request)))

    @app.post("/api/consultation-links/{link_id}/host-token")
    async def host_token(link_id: str, request: Request) -> JSONResponse:
        try:
            doc = await stack.issuer.host_token(link_id)
        except LinkNotFound:
            raise
        except LinkprontoError as exc:
            return error_response(exc, 503, request_lang(request))
        return JSONResponse(doc)

    from linkpronto.web import dropin, logs

    dropin.register(app, stack)
    logs.register(app, stack)

    @app.post("/api/dashboard-login")
    async def dashboard_login(request: Request) -> JSONResponse:
        """A fresh one-time dashboard URL (for a second browser, or after the first was used)."""
        base = f"http://127.0.0.1:{port_getter()}"
        return JSONResponse({"url": guard_sessions.login_url(base)}, headers={"Cache-Control": "no-store"})

    # -- stack control ------------------------------------------------------------------------------
    @app.post("/api/stack/start")
    async def stack_start(request: Request) -> JSONResponse:
        if stack.state is StackState.FAILED:
            await stack.stop()
        await stack.start()
        return JSONResponse(stack.status_json(request_lang(request)), status_code=202)

    @app.post("/api/stack/stop")
    async def stack_stop(request: Request) -> JSONResponse:
        await stack.stop()
        return JSONResponse(stack.status_json(request_lang(request)))

    @app.post("/api/shutdown")
    async def shutdown_route() -> JSONResponse:
        if shutdown is not None:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(shutdown()))
        return JSONResponse({"ok": True}, status_code=202)

    # -- pages --------------------------------------------------------------------------------------
    @app.get("/")
    async def dashboard(request: Request) -> HTMLResponse:
        from linkpronto.web import pages

        return HTMLResponse(pages.dashboard_html(request_lang(request)))

    @app.get("/call/{link_id}")
    async def call_page(link_id: str, request: Request) -> HTMLResponse:
        from linkpronto.web import pages

        return HTMLResponse(pages.call_html(link_id, request_lang(request)))

    from linkpronto.web.assets import STATIC_DIR

    app.mount("/_linkpronto/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    return AdminGuard(
        app,
        token=stack.secrets.admin_token,
        port_getter=port_getter,
        token_path=str(stack.settings.data_dir / "admin-token"),
        sessions=guard_sessions,
        extra_hosts=_admin_hosts(stack.settings, port_getter),
    )


def _admin_hosts(settings: Any, port_getter: Callable[[], int]) -> frozenset[str]:
    """``server.admin_hosts``, plus ``<admin_bind>:<port>`` when bound to one specific address."""
    hosts = set(settings.server.admin_hosts)
    bind = settings.server.admin_bind
    if bind not in ("", "0.0.0.0", "::", "127.0.0.1", "localhost"):
        hosts.add(f"[{bind}]:{port_getter()}" if ":" in bind else f"{bind}:{port_getter()}")
    return frozenset(hosts)


def _json(model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A document answered straight from its model (one serialisation, no dict round trip)."""
    return Response(model.model_dump_json(), status_code=status_code, headers=headers, media_type="application/json")


def _sse(doc: dict[str, Any]) -> bytes:
    return ("event: status\ndata: " + json.dumps(doc, separators=(",", ":")) + "\n\n").encode("utf-8")
