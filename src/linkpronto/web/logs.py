"""``GET /api/logs`` on the admin listener: the children's output for ``linkpronto logs`` and the dashboard.

``?component=app|livekit|tunnel&n=200&after=SEQ`` → ``{component, lines: [{seq, at, name, line}], last_seq}``.
Lines are already redacted (secrets never leave the supervisor). A child whose output is not streamed
through the stack's hub (the tunnel's own process) answers with its component's last lines, if it keeps any.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from linkpronto.errors import InvalidRequest
from linkpronto.i18n import Text
from linkpronto.stack import Stack
from linkpronto.web.common import request_lang

COMPONENTS = ("app", "livekit", "tunnel")
MAX_LINES = 2000


def _fallback(stack: Stack, component: str) -> list[str]:
    part: Any = {"app": stack.app, "livekit": stack.livekit, "tunnel": stack.tunnel}.get(component)
    for attr in ("log_tail",):
        fn = getattr(part, attr, None)
        if callable(fn):
            lines = fn()
            if isinstance(lines, list):
                return [str(x) for x in lines]
    process = getattr(part, "process", None) or getattr(part, "_process", None)
    fn = getattr(process, "log_tail", None)
    return [str(x) for x in fn()] if callable(fn) else []


def register(app: FastAPI, stack: Stack) -> None:
    @app.get("/api/logs")
    async def logs(request: Request, component: str = "app", n: int = 200, after: int = 0) -> JSONResponse:
        if component not in COMPONENTS:
            names = ", ".join(COMPONENTS)
            err = InvalidRequest(
                Text("componente deve ser um de: " + names, "component must be one of: " + names),
                fix=Text.same("linkpronto logs app|livekit|tunnel"),
            )
            return JSONResponse({"error": err.to_problem(request_lang(request))}, status_code=422)
        n = max(0, min(n, MAX_LINES))
        items = [x.to_json() for x in stack.output.tail(component, n, after)]
        if not items and after == 0:
            now = time.time()
            items = [{"seq": 0, "at": now, "name": component, "line": line}
                     for line in _fallback(stack, component)[-n:]] if n else []
        return JSONResponse(
            {"component": component, "lines": items, "last_seq": stack.output.last_seq},
            headers={"Cache-Control": "no-store"},
        )
