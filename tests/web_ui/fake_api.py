"""A fake linkpronto admin + public API, for the page states the real server cannot be put in on demand
(a stack that fails and then recovers, checks ticking off one by one, a link sent before the address
changed, a phone's failed device check). Every other page flow is tested against the real server
(``test_real_server.py``).

It cannot drift from the real API: every document it answers is built from, or validated by, the
pydantic models that ARE the contract (:mod:`linkpronto.schema`: Status, Link, Check, Problem,
JoinGrant, HostGrant, RuntimeConfig, ErrorBody, InvalidRequest), with ``extra="forbid"``, so a field
the real API does not have fails the test at once. The language is chosen as the real server chooses
it (:func:`linkpronto.web.common.request_lang`: ``?lang=``, then ``Accept-Language``). Shapes from
/work/shared/CONTRACT.md ("Admin API" and "Public listener"): Status,
Link, the SSE stream (``event: status``), 201/202/503/422 on link creation, revoke, host token,
``/_linkpronto/api/join``, ``/_linkpronto/api/device-check``, and ``/_linkpronto/livekit/rtc`` + ``/rtc/v1`` WebSocket endpoints
that accept and then close (there is no LiveKit here: they only record that the page opened a
signalling WebSocket on its own origin). The pages themselves are the real ones
(:mod:`linkpronto.web.pages`) and the static files are served from the real ``STATIC_DIR``.

Both listeners run as real uvicorn servers on 127.0.0.1 in one background thread; tests change the
fake's state from the test thread under a lock.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import segno
import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError

from linkpronto import schema
from linkpronto.paths import STATIC
from linkpronto.web.assets import STATIC_DIR
from linkpronto.web.common import request_lang
from linkpronto.web.pages import call_html, dashboard_html, patient_html

# The real verification ladder's check names (linkpronto/verify.py: _timed(...)); ``app`` runs only
# with an app (FakeStack.with_app), ``media`` always closes the list (informational, never required).
CHECK_NAMES = ("livekit", "public_probe", "public_rtc", "link_route")
APP_CHECK = "app"
MEDIA_CHECK = "media"
#: What a browser opens to get the session cookie, as the one-time URL ``linkpronto up`` prints.
FAKE_ADMIN_TOKEN = "fake-admin-token"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


def _lang(request: Request) -> str:
    return request_lang(request)


def _doc(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the real API would answer it: validated by the contract's model, then dumped."""
    return schema.dump(model.model_validate(data))


def _error(code: str, message: str, fix: str | None, status: int) -> JSONResponse:
    return JSONResponse(schema.dump(schema.ErrorBody(error=schema.Problem(code=code, message=message, fix=fix))),
                        status)


class FakeStack:
    """Mutable state shared by both fake apps (guarded by ``lock``)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.version = 0
        self.public_origin = ""
        self.state = "ready"
        self.with_app = False
        self.media_reach = "same-network"
        self.checks: list[dict[str, Any]] = [self._check(n, True) for n in CHECK_NAMES]
        self.problems: list[dict[str, Any]] = []
        self.logs: dict[str, list[str]] = {"app": [], "livekit": [], "tunnel": []}
        self.logins = 0
        self.fail_with: dict[str, Any] | None = None
        self.step_s = 0.35
        self.links: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.device_checks: list[dict[str, Any]] = []
        self.joins: list[dict[str, Any]] = []
        self.rtc: list[str] = []
        self.host_tokens: list[str] = []

    @staticmethod
    def _check(name: str, ok: bool) -> dict[str, Any]:
        return {
            "name": name,
            "ok": ok,
            "duration_ms": 12.5,
            "detail": f"{name} {'ok' if ok else 'failed'}",
            "fix": None if ok else f"fix for {name}",
        }

    def rungs(self) -> list[str]:
        return [*CHECK_NAMES[:1], *([APP_CHECK] if self.with_app else []), *CHECK_NAMES[1:]]

    def all_checks(self) -> list[dict[str, Any]]:
        """The ladder's checks as the real status shows them: the app's when there is one, media last."""
        with self.lock:
            checks = list(self.checks)
            if self.with_app and checks and not any(c["name"] == APP_CHECK for c in checks):
                checks.insert(1, self._check(APP_CHECK, True))
            if checks:
                anywhere = self.media_reach == "anywhere"
                checks.append({**self._check(MEDIA_CHECK, anywhere), "required": False,
                               "detail": f"media reach: {self.media_reach}"})
            return checks

    def bump(self) -> None:
        with self.lock:
            self.version += 1

    def status(self) -> dict[str, Any]:
        with self.lock:
            now = _now()
            starting = self.state == "starting"
            doc = schema.Status(
                state=schema.StackState(self.state),
                since=now,
                public_url=self.public_origin,
                livekit_url=self.public_origin.replace("http", "ws", 1) + "/_linkpronto/livekit",
                tunnel=schema.TunnelInfo(provider="static", state=schema.PartState.READY,
                                         public_url=self.public_origin, since=now),
                components={
                    "livekit": schema.Part(state=schema.PartState.STARTING if starting else schema.PartState.READY,
                                           pid=1234, since=now),
                    "tunnel": schema.Part(state=schema.PartState.READY, url=self.public_origin, since=now),
                },
                verification=schema.Verification(ok=self.state == "ready", checked_at=now, age_s=1.0,
                                                 checks=[schema.Check.model_validate(c) for c in self.all_checks()]),
                media=schema.Media(reach=self.media_reach, detail="LiveKit on this machine"),  # type: ignore[arg-type]
                problems=[schema.Problem.model_validate(p) for p in self.problems],
            )
            return schema.dump(doc)

    def set_starting(self) -> None:
        with self.lock:
            self.state = "starting"
            self.checks = []
        self.bump()

    def add_link(self, *, status: str = "ready", **fields: Any) -> dict[str, Any]:
        """A link as the real API documents it (``schema.Link``), plus the fake's own ``_token``,
        ``_url`` and ``_qr`` (never answered)."""
        token = secrets.token_urlsafe(16)
        link_id = "lnk_" + secrets.token_hex(4)
        now = _now()
        url = f"{self.public_origin}/c/{token}"
        buf = io.BytesIO()
        segno.make(url).save(buf, kind="svg", xmldecl=False, scale=4)
        ready = status == "ready"
        model = schema.Link(
            id=link_id,
            status=schema.LinkStatus(status),
            url=url if ready else None,
            professional_id=fields.pop("professional_id", None) or "dra-ana",
            client_id=fields.pop("client_id", None),
            consultation_type=fields.pop("consultation_type", None),
            room="room-" + link_id,
            created_at=now,
            expires_at=now + timedelta(hours=24),
            verified_at=now if ready else None,
            public_base_url=self.public_origin,
            checks=[schema.Check.model_validate(c) for c in self.all_checks()],
            qr_svg_url=f"/api/consultation-links/{link_id}/qr.svg" if ready else None,
            whatsapp_url=("https://wa.me/?text=" + quote(f"Sua consulta: {url}")) if ready else None,
            **fields,
        )
        link: dict[str, Any] = {**schema.dump(model), "_token": token, "_url": url, "_qr": buf.getvalue().decode()}
        with self.lock:
            self.links[link_id] = link
            self.tokens[token] = link_id
        self.bump()
        return link

    def make_ready(self, link_id: str) -> None:
        with self.lock:
            link = self.links[link_id]
            link.update(status="ready", url=link["_url"], verified_at=_iso(_now()),
                        qr_svg_url=f"/api/consultation-links/{link_id}/qr.svg",
                        whatsapp_url="https://wa.me/?text=" + quote(f"Sua consulta: {link['_url']}"))
        self.bump()

    def public_link(self, link_id: str) -> dict[str, Any]:
        """The link as answered: whatever a test changed in it still has to be a valid ``schema.Link``."""
        with self.lock:
            return _doc(schema.Link, {k: v for k, v in self.links[link_id].items() if not k.startswith("_")})

    async def prepare(self, link_id: str) -> None:
        """Tick the verification checks one by one, then mark the stack and the link ready."""
        with self.lock:
            self.state = "verifying"
        self.bump()
        for name in self.rungs():
            await asyncio.sleep(self.step_s)
            with self.lock:
                self.checks = [*self.checks, self._check(name, True)]
            self.bump()
        with self.lock:
            self.state = "ready"
        self.make_ready(link_id)


FAKE_SESSION = "linkpronto_session_fake"


def admin_app(stack: FakeStack) -> FastAPI:
    app = FastAPI()
    tasks: set[asyncio.Task[None]] = set()

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        with stack.lock:
            stack.requests.append((request.method, request.url.path, dict(request.headers)))
        # Like the real AdminGuard (CONTRACT.md): the session cookie comes only from the one-time login
        # URL (``/?token=…`` → 303 to ``/`` with the cookie), and anything that changes state needs a
        # same-origin Origin. No header alone grants.
        if request.url.path == "/" and "token" in request.query_params:
            if request.query_params["token"] != FAKE_ADMIN_TOKEN:
                return _error("UNAUTHORIZED", "no", None, 401)
            rest = "&".join(f"{k}={quote(v)}" for k, v in request.query_params.items() if k != "token")
            resp = Response(status_code=303, headers={"Location": "/?" + rest if rest else "/",
                                                      "Cache-Control": "no-store"})
            resp.set_cookie(FAKE_SESSION, "ok", httponly=True, samesite="strict", path="/")
            with stack.lock:
                stack.logins += 1
            return resp
        if request.url.path.startswith("/api/"):
            if request.cookies.get(FAKE_SESSION) != "ok":
                return _error("UNAUTHORIZED", "no", None, 401)
            origin = request.headers.get("origin")
            if request.method not in ("GET", "HEAD") and origin != f"http://{request.headers.get('host')}":
                return _error("FORBIDDEN_ORIGIN", "no", None, 403)
        resp: Response = await call_next(request)
        return resp

    @app.get("/")
    async def dashboard(request: Request) -> HTMLResponse:
        return HTMLResponse(dashboard_html(_lang(request)))

    @app.get("/call/{link_id}")
    async def call(link_id: str, request: Request) -> HTMLResponse:
        return HTMLResponse(call_html(link_id, _lang(request)))

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return stack.status()

    @app.get("/api/consultation-links/{link_id}/qr.svg")
    async def qr(link_id: str) -> Response:
        with stack.lock:
            svg = stack.links[link_id]["_qr"]
        return Response(svg, media_type="image/svg+xml")

    @app.get("/api/status/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            last = -1
            sent_at = 0.0
            while not await request.is_disconnected():
                if stack.version != last or time.monotonic() - sent_at > 15:
                    last = stack.version
                    sent_at = time.monotonic()
                    yield f"event: status\r\ndata: {json.dumps(stack.status())}\r\n\r\n"
                await asyncio.sleep(0.05)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/api/consultation-links")
    async def create(request: Request) -> Response:
        try:  # the real API's request model: what it refuses, the fake refuses
            body = schema.CreateLinkRequest.model_validate(json.loads(await request.body() or b"{}")).model_dump()
        except (ValueError, ValidationError) as exc:
            errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": ("body",), "msg": "not JSON"}]
            fields = [schema.FieldError(field=".".join(str(x) for x in e.get("loc", ())) or "body",
                                        message=str(e.get("msg", ""))) for e in errors]
            invalid = schema.InvalidRequest(
                error=schema.Problem(code="INVALID_REQUEST", message=f"{fields[0].field}: {fields[0].message}"),
                fields=fields,
            )
            return JSONResponse(schema.dump(invalid), 422)
        if stack.fail_with is not None:
            # A full disk is 507 Insufficient Storage, as the real create answers; anything else 503.
            status = 507 if stack.fail_with.get("code") == "DISK_FULL" else 503
            return JSONResponse(schema.dump(schema.ErrorBody(error=schema.Problem.model_validate(stack.fail_with))),
                                status)
        fields = {k: body.get(k) for k in ("professional_id", "client_id", "consultation_type")}
        if stack.state == "ready":
            link = stack.add_link(status="ready", **fields)
            return JSONResponse(stack.public_link(link["id"]), 201)
        link = stack.add_link(status="preparing", **fields)
        task = asyncio.create_task(stack.prepare(link["id"]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse(stack.public_link(link["id"]), 202,
                            headers={"Location": f"/api/consultation-links/{link['id']}"})

    @app.get("/api/consultation-links")
    async def list_links(professional_id: str | None = None, status: str | None = None) -> dict[str, Any]:
        with stack.lock:
            ids = list(stack.links)
        items = [stack.public_link(i) for i in reversed(ids)]
        if professional_id is not None:
            items = [i for i in items if i["professional_id"] == professional_id]
        if status:
            wanted = set(status.split(","))
            items = [i for i in items if i["status"] in wanted]
        return {"items": items}

    @app.get("/api/consultation-links/{link_id}")
    async def get_link(link_id: str) -> Response:
        if link_id not in stack.links:
            return _error("LINK_NOT_FOUND", "not found", None, 404)
        return JSONResponse(stack.public_link(link_id))

    @app.delete("/api/consultation-links/{link_id}")
    async def revoke(link_id: str) -> Response:
        with stack.lock:
            stack.links[link_id]["status"] = "revoked"
        stack.bump()
        return JSONResponse(stack.public_link(link_id))

    @app.post("/api/consultation-links/{link_id}/host-token")
    async def host_token(link_id: str) -> dict[str, Any]:
        with stack.lock:
            stack.host_tokens.append(link_id)
            room = stack.links[link_id]["room"]
        return _doc(schema.HostGrant, {
            "livekit_url": stack.public_origin.replace("http", "ws", 1) + "/_linkpronto/livekit",
            "access_token": "fake-host-token", "room": room, "identity": "professional"})

    @app.get("/api/logs")
    async def logs(request: Request, component: str = "app", n: int = 200, after: int = 0) -> Response:
        if component not in stack.logs:
            invalid = schema.ErrorBody(error=schema.Problem(
                code="INVALID_REQUEST", message="component must be one of: " + ", ".join(stack.logs),
                fix="linkpronto logs app|livekit|tunnel"))
            return JSONResponse(schema.dump(invalid), 422)
        with stack.lock:
            lines = stack.logs[component]
            items = [{"seq": i + 1, "at": time.time(), "name": component, "line": line}
                     for i, line in enumerate(lines) if i + 1 > after][-max(0, n):] if n else []
            return JSONResponse({"component": component, "lines": items, "last_seq": len(lines)})

    @app.post("/api/dashboard-login")
    async def dashboard_login(request: Request) -> dict[str, Any]:
        return {"url": f"http://{request.headers.get('host')}/?token={FAKE_ADMIN_TOKEN}"}

    @app.post("/api/stack/start")
    async def stack_start() -> Response:
        with stack.lock:
            stack.state = "starting"
        stack.bump()
        return JSONResponse(stack.status(), 202)

    @app.post("/api/stack/stop")
    async def stack_stop() -> dict[str, Any]:
        with stack.lock:
            stack.state = "stopped"
            stack.checks = []
        stack.bump()
        return stack.status()

    @app.post("/api/shutdown")
    async def shutdown() -> Response:
        return JSONResponse({"ok": True}, 202)

    @app.post("/api/generate-consultation-token")
    async def drop_in(request: Request) -> Response:
        """The drop-in route, answered with the same models (schema.DropIn*) as the real one."""
        try:
            body = schema.DropInRequest.model_validate(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as exc:
            fields = [schema.FieldError(field=".".join(str(x) for x in e.get("loc", ())) or "body",
                                        message=str(e.get("msg", "")))
                      for e in getattr(exc, "errors", lambda: [{"loc": ("body",), "msg": "not JSON"}])()]
            return JSONResponse(schema.dump(schema.DropInInvalid(error="invalid: professionalId", fields=fields)), 400)
        if stack.fail_with is not None:
            failed = schema.DropInNotReady(error=str(stack.fail_with["message"]), code=str(stack.fail_with["code"]),
                                           fix=stack.fail_with.get("fix"), linkId=None, status="failed")
            return JSONResponse(schema.dump(failed), 503)
        fields = {"professional_id": body.professionalId, "client_id": body.clientId,
                  "consultation_type": body.consultationType}
        if stack.state != "ready":
            link = stack.add_link(status="preparing", **fields)
            waiting = schema.DropInNotReady(error="O link ainda está sendo preparado.", code="VERIFY_TIMEOUT",
                                            fix=f"GET /api/consultation-links/{link['id']}", linkId=link["id"],
                                            status="preparing")
            return JSONResponse(schema.dump(waiting), 202, headers={
                "Location": f"/api/consultation-links/{link['id']}", "Retry-After": "2"})
        link = stack.add_link(status="ready", **fields)
        doc = stack.public_link(link["id"])
        ready = schema.DropInReady(
            token=link["_token"], consultationUrl=link["_url"], qrCode="data:image/svg+xml;base64,",
            whatsappDeepLink=doc["whatsapp_url"], shortMessage=f"Sua consulta: {link['_url']}",
            expiresAt=doc["expires_at"], createdAt=doc["created_at"], verifiedAt=doc["verified_at"],
            linkId=link["id"], room=doc["room"])
        return JSONResponse(schema.dump(ready))

    @app.api_route("/api/generate-consultation-token", methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"])
    async def drop_in_wrong_method() -> Response:
        return JSONResponse({"success": False, "error": "Use POST."}, 405, headers={"Allow": "POST"})

    app.mount(STATIC, StaticFiles(directory=STATIC_DIR), name="static")
    return app


def public_app(stack: FakeStack) -> FastAPI:
    app = FastAPI()

    def find(token: str) -> dict[str, Any] | None:
        with stack.lock:
            link_id = stack.tokens.get(token)
            return stack.links.get(link_id) if link_id else None

    @app.get("/c/{token}")
    @app.get("/_linkpronto/c/{token}")
    async def patient(token: str, request: Request) -> HTMLResponse:
        link = find(token)
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
        if link is None:
            return HTMLResponse(patient_html(state="not_found", consultation_type=None, lang=_lang(request)),
                                404, headers=headers)
        if link["status"] in ("expired", "revoked", "exhausted"):
            return HTMLResponse(patient_html(state=link["status"], consultation_type=None, lang=_lang(request)),
                                410, headers=headers)
        return HTMLResponse(patient_html(state="ok", consultation_type=link["consultation_type"],
                                         lang=_lang(request)), headers=headers)

    @app.post("/_linkpronto/api/join")
    async def join(request: Request) -> Response:
        body = await request.json()
        link = find(str(body.get("token", "")))
        if link is None:
            return _error("LINK_NOT_FOUND", "Link não encontrado.", "Peça um novo link.", 404)
        if link["status"] != "ready":
            return _error("LINK_GONE", "Este link de consulta expirou.", "Peça um novo link ao profissional.", 410)
        with stack.lock:
            stack.joins.append(body)
            link["uses"] += 1
        stack.bump()
        return JSONResponse(_doc(schema.JoinGrant, {
            "livekit_url": stack.public_origin.replace("http", "ws", 1) + "/_linkpronto/livekit",
            "access_token": "fake-join-token", "room": link["room"], "identity": "p_" + secrets.token_hex(4),
            "expires_at": _iso(_now() + timedelta(minutes=15))}))

    @app.post("/_linkpronto/api/device-check")
    async def device_check(request: Request) -> Response:
        body = await request.json()
        link = find(str(body.get("token", "")))
        if link is None:
            return _error("LINK_NOT_FOUND", "x", None, 404)
        with stack.lock:
            stack.device_checks.append(body["result"])
            link["device_check"] = {**body["result"], "received_at": _iso(_now())}
        stack.bump()
        return Response(status_code=204)

    @app.post("/_linkpronto/api/media-check-token")
    async def media_check_token(request: Request) -> Response:
        # The patient's real WebRTC check needs a real LiveKit: the fake says "not now", the page skips it.
        return _error("LIVEKIT_UNHEALTHY", "O servidor de vídeo ainda não está pronto.", None, 503)

    @app.get("/_linkpronto/api/runtime-config")
    async def runtime_config() -> dict[str, Any]:
        return _doc(schema.RuntimeConfig, {
            "site_url": stack.public_origin,
            "livekit_url": stack.public_origin.replace("http", "ws", 1) + "/_linkpronto/livekit"})

    async def rtc(ws: WebSocket) -> None:
        with stack.lock:
            stack.rtc.append(ws.url.path)
        await ws.accept()
        await ws.close(code=1011)

    app.add_api_websocket_route("/_linkpronto/livekit/rtc", rtc)
    app.add_api_websocket_route("/_linkpronto/livekit/rtc/v1", rtc)

    @app.get("/_linkpronto/livekit/rtc/validate")
    @app.get("/_linkpronto/livekit/rtc/v1/validate")
    async def validate() -> Response:
        return Response("fake: no LiveKit behind this endpoint", status_code=503)

    app.mount(STATIC, StaticFiles(directory=STATIC_DIR), name="static")
    return app


class FakeServers:
    """Run the admin and public fake apps on 127.0.0.1 (ephemeral ports) in one background thread."""

    def __init__(self) -> None:
        self.stack = FakeStack()
        self._socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(2)]
        for s in self._socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
        self.admin_url = f"http://127.0.0.1:{self._socks[0].getsockname()[1]}"
        self.public_url = f"http://127.0.0.1:{self._socks[1].getsockname()[1]}"
        self.stack.public_origin = self.public_url
        #: Where a browser starts: the one-time login URL (session cookie, then 303 to the dashboard).
        self.login_url = f"{self.admin_url}/?token={FAKE_ADMIN_TOKEN}"
        self._servers = [
            uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="off"))
            for app in (admin_app(self.stack), public_app(self.stack))
        ]
        self._thread = threading.Thread(target=self._run, name="fake-linkpronto", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(srv.serve(sockets=[sock]) for srv, sock in zip(self._servers, self._socks,
                                                                                    strict=True)))

        asyncio.run(main())

    def start(self) -> FakeServers:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not all(s.started for s in self._servers):
            if time.monotonic() > deadline:
                raise TimeoutError("fake servers did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.should_exit = True
        self._thread.join(timeout=10)
        for s in self._socks:
            s.close()
