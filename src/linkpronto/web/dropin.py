"""``POST /api/generate-consultation-token`` on the admin listener: the drop-in for the user's route.

It keeps the old route's contract (CONTRACT.md), so the app's existing share component keeps working:

* ``200`` :class:`~linkpronto.schema.DropInReady` only when the link is verified — every old key is
  non-null — plus ``room`` (the LiveKit room, so the app's professional side joins the same one);
* ``202`` (still preparing; it becomes ready by itself) or ``503`` (the stack failed) as
  :class:`~linkpronto.schema.DropInNotReady` ``{success: false, error, code, fix, linkId, status}``;
  ``error`` is a sentence for a person, so an old client that shows ``data.error`` shows something true;
* ``400`` :class:`~linkpronto.schema.DropInInvalid` ``{success: false, error, fields}`` for bad input;
* any other method: ``405`` in the same shape, with ``Allow: POST``.

Never ``success: true`` without a URL.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from linkpronto.errors import LinkprontoError, VerifyTimeout
from linkpronto.i18n import Lang, Text
from linkpronto.links.service import LinkStatus, PreparedTokens, qr_data_uri, short_message, whatsapp_url
from linkpronto.schema import DropInInvalid, DropInNotReady, DropInReady, DropInRequest, FieldError, dump
from linkpronto.stack import Stack
from linkpronto.web.common import request_lang

PATH = "/api/generate-consultation-token"
MAX_BODY = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store"}

PREPARING = Text(
    "O link ainda está sendo preparado ({why}). Ele fica pronto sozinho em instantes.",
    "The link is still being prepared ({why}). It becomes ready by itself in a moment.",
)
PREPARING_FIX = Text(
    "Aguarde e consulte GET /api/consultation-links/{id} (ou tente de novo); "
    "veja 'linkpronto status' para o motivo.",
    "Wait and poll GET /api/consultation-links/{id} (or try again); see 'linkpronto status' for the reason.",
)
FAILED = Text(
    "Não foi possível gerar um link válido agora: {why}",
    "A valid link cannot be made right now: {why}",
)
BAD_INPUT = Text("Dados inválidos: {fields}.", "Invalid data: {fields}.")
BAD_METHOD = Text(
    "Use POST para gerar um link de consulta.", "Use POST to generate a consultation link."
)


def _invalid(lang: Lang, fields: list[FieldError]) -> JSONResponse:
    names = ", ".join(f"{f.field} ({f.message})" for f in fields)
    doc = DropInInvalid(error=BAD_INPUT.format(fields=names).get(lang), fields=fields)
    return JSONResponse(dump(doc), status_code=400, headers=_NO_STORE)


def _fields(exc: ValidationError) -> list[FieldError]:
    out = []
    for e in exc.errors():
        name = ".".join(str(x) for x in e.get("loc", ())) or "body"
        out.append(FieldError(field=name, message=str(e.get("msg", ""))))
    return out


async def _parse(request: Request, lang: Lang) -> DropInRequest | JSONResponse:
    body = await request.body()
    if len(body) > MAX_BODY:
        return _invalid(lang, [FieldError(field="body", message=f"larger than {MAX_BODY} bytes")])
    try:
        data: Any = json.loads(body or b"{}")
    except ValueError:
        return _invalid(lang, [FieldError(field="body", message="not JSON")])
    if not isinstance(data, dict):
        return _invalid(lang, [FieldError(field="body", message="expected a JSON object")])
    try:
        return DropInRequest.model_validate(data)
    except ValidationError as exc:
        return _invalid(lang, _fields(exc))


def _not_ready(lang: Lang, status: int, error: Text, code: str, fix: Text | None,
               link_id: str | None, link_status: str) -> JSONResponse:
    doc = DropInNotReady(
        error=error.get(lang), code=code, fix=fix.get(lang) if fix else None, linkId=link_id, status=link_status
    )
    headers = dict(_NO_STORE)
    if link_id is not None and status == 202:
        headers["Location"] = f"/api/consultation-links/{link_id}"
        headers["Retry-After"] = "2"
    return JSONResponse(dump(doc), status_code=status, headers=headers)


def _failure(stack: Stack, lang: Lang, exc: LinkprontoError, link_id: str | None, link_status: str) -> JSONResponse:
    return _not_ready(lang, 503, FAILED.format(why=exc.message(lang)), exc.code, exc.fix_text, link_id, link_status)


async def _refill(prepared: PreparedTokens, template: str | None) -> None:
    """Prepare the next token and its QR once the answer went out (in the loop, not a thread: a thread
    would fight the event loop for the GIL and delay the next request more than the 2-3 ms it costs)."""
    prepared.fill(template)


def register(app: FastAPI, stack: Stack) -> None:
    """Add the drop-in route (and its 405) to the admin app."""

    @app.post(PATH)
    async def generate(request: Request) -> Response:
        lang = request_lang(request)
        parsed = await _parse(request, lang)
        if isinstance(parsed, JSONResponse):
            return parsed
        links = stack.issuer.links
        template_at_take = links.url_template()
        # A token made ahead with its QR code ready (PreparedTokens): no QR rendering on this path.
        token, qr = links.prepared.take(template_at_take)
        try:
            row, token = await stack.issuer.create(
                professional_id=parsed.professionalId,
                client_id=parsed.clientId,
                consultation_type=parsed.consultationType,
                expires_in_s=parsed.expiresInS,
                max_uses=None,
                wait_s=parsed.waitS,
                room=parsed.roomName or parsed.room,
                token=token,
            )
        except LinkprontoError as exc:
            return _failure(stack, lang, exc, None, "failed")
        status = links.status_of(row)
        url = stack.issuer.url_for(row)
        refill = BackgroundTask(_refill, links.prepared, links.url_template())
        if status == LinkStatus.READY and url and row.verified_at is not None:
            template = parsed.messageTemplate or stack.settings.links.message_template
            message = short_message(url, lang, template, name=parsed.professionalId,
                                    consultation_type=parsed.consultationType or "")
            if qr is None or url != links.prepared.url(template_at_take or "", token):
                qr = qr_data_uri(url)  # nothing prepared, or the public URL changed meanwhile
            ready = DropInReady(
                token=token,
                consultationUrl=url,
                qrCode=qr,
                whatsappDeepLink=whatsapp_url(url, lang, message),
                shortMessage=message,
                expiresAt=row.expires_at,
                createdAt=row.created_at,
                verifiedAt=row.verified_at,
                linkId=row.id,
                room=row.room,
            )
            # Straight from the model to bytes (no dict round trip through json.dumps).
            return Response(ready.model_dump_json(), media_type="application/json", headers=_NO_STORE,
                            background=refill)
        failure = stack.failure()
        if failure is not None:
            return _failure(stack, lang, failure, row.id, status)
        why = stack.status(lang).reason or status
        return _not_ready(lang, 202, PREPARING.format(why=why), VerifyTimeout.code,
                          PREPARING_FIX.format(id=row.id), row.id, status)

    @app.api_route(PATH, methods=["GET", "HEAD", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def wrong_method(request: Request) -> Response:
        doc = {"success": False, "error": BAD_METHOD.get(request_lang(request))}
        return JSONResponse(doc, status_code=405, headers={"Allow": "POST", **_NO_STORE})

