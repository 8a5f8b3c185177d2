"""Helpers shared by the admin and public apps: language, error bodies, client address."""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from linkpronto.errors import LinkprontoError
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
_PUBLIC_OUTAGE_FIX = Text(
    "Tente de novo em alguns instantes; se continuar, avise o profissional.",
    "Try again in a few moments; if it goes on, tell the professional.",
)


def public_error(err: LinkprontoError) -> LinkprontoError:
    """What an anonymous caller may read of an infrastructure error: its stable code and a sentence
    for a patient — never the database driver, user, host, port, file path or LiveKit address that
    the error carries for the professional's own screens (issue 19 finding 13)."""
    from linkpronto.errors import LivekitUnhealthy, StorageFault, StoreUnavailable

    if isinstance(err, (StoreUnavailable, StorageFault, LivekitUnhealthy)):
        return LinkprontoError(_PUBLIC_OUTAGE, fix=_PUBLIC_OUTAGE_FIX, code=err.code)
    return err


def error_response(err: LinkprontoError, status: int, lang: Lang, *, retry_after: int | None = None) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(error_body(err, lang), status_code=status, headers=headers)


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(conn: HTTPConnection, client_ip_header: str | None) -> str | None:
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
    peer = conn.client.host if conn.client else ""
    peer_ip = _ip(peer) if peer else None
    if peer_ip is not None and not ipaddress.ip_address(peer_ip).is_loopback:
        return peer_ip
    if not client_ip_header:
        return None
    values = conn.headers.getlist(client_ip_header)
    if not values:
        return None
    last = values[-1]
    if client_ip_header.lower() == "x-forwarded-for":
        last = last.split(",")[-1]
    return _ip(last)
