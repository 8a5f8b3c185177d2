"""Helpers shared by the admin and public apps: language, error bodies, client address."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from linkpronto.errors import LinkprontoError
from linkpronto.gateway._headers import trusted_client
from linkpronto.i18n import Lang, Text, pick_lang


def request_lang(conn: HTTPConnection) -> Lang:
    """``?lang=``, then ``Accept-Language``, then ``LINKPRONTO_LANG`` (chosen once per request)."""
    return pick_lang(conn.query_params.get("lang"), conn.headers.get("accept-language"))


def error_body(err: LinkprontoError, lang: Lang) -> dict[str, Any]:
    return {"error": err.to_problem(lang)}


_PUBLIC_OUTAGE = Text(
    "O serviço de consultas está com um problema passageiro. Nada foi perdido.",
    "The consultation service has a passing problem. Nothing was lost.",
)
_PUBLIC_VIDEO_OUTAGE = Text(
    "O servidor de vídeo não está respondendo agora. Nada foi perdido: seu link continua valendo.",
    "The video server is not answering right now. Nothing was lost: your link is still valid.",
)
_PUBLIC_OUTAGE_FIX = Text(
    "Tente de novo em alguns instantes; se continuar, avise o profissional.",
    "Try again in a few moments; if it goes on, tell the professional.",
)


def public_error(err: LinkprontoError) -> LinkprontoError:
    """What an anonymous caller may read of an infrastructure error: its stable code and a sentence
    for a patient — never the database driver, user, host, port, file path or LiveKit address that
    the error carries for the professional's own screens (issue 19 finding 13)."""
    from linkpronto.errors import LivekitUnhealthy, StorageFault, StoreUnavailable

    if isinstance(err, LivekitUnhealthy):
        return LinkprontoError(_PUBLIC_VIDEO_OUTAGE, fix=_PUBLIC_OUTAGE_FIX, code=err.code)
    if isinstance(err, (StoreUnavailable, StorageFault)):
        return LinkprontoError(_PUBLIC_OUTAGE, fix=_PUBLIC_OUTAGE_FIX, code=err.code)
    return err


def error_response(err: LinkprontoError, status: int, lang: Lang, *, retry_after: int | None = None) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(error_body(err, lang), status_code=status, headers=headers)


def client_address(conn: HTTPConnection, client_ip_header: str | None) -> str | None:
    """The client's address as far as it can be known without trusting the client (see
    :func:`linkpronto.gateway._headers.trusted_client`); None when unknown."""
    return trusted_client(conn.client.host if conn.client else None, conn.scope["headers"], client_ip_header)
