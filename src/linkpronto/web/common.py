"""Helpers shared by the admin and public apps: language, error bodies, client address."""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from linkpronto.errors import LinkprontoError
from linkpronto.i18n import Lang, pick_lang


def request_lang(conn: HTTPConnection) -> Lang:
    """``?lang=``, then ``Accept-Language``, then ``LINKPRONTO_LANG`` (chosen once per request)."""
    return pick_lang(conn.query_params.get("lang"), conn.headers.get("accept-language"))


def error_body(err: LinkprontoError, lang: Lang) -> dict[str, Any]:
    return {"error": err.to_problem(lang)}


def error_response(err: LinkprontoError, status: int, lang: Lang) -> JSONResponse:
    return JSONResponse(error_body(err, lang), status_code=status, headers={"Cache-Control": "no-store"})


def client_address(conn: HTTPConnection) -> str:
    """The patient's address. Forwarding headers are trusted only from a local peer (the tunnel)."""
    peer = conn.client.host if conn.client else "unknown"
    try:
        local_peer = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local_peer = False
    if local_peer:
        cf = conn.headers.get("cf-connecting-ip")
        if cf:
            return cf.strip()
        xff = conn.headers.get("x-forwarded-for")
        if xff:
            return xff.split(",")[-1].strip()
    return peer
