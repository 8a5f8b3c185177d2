"""The schema models are the contract: the documents the program renders validate against them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from linkpronto import schema
from linkpronto.config import defaults
from linkpronto.keys import load_or_create
from linkpronto.links.service import LinkService, Proof
from linkpronto.links.store import LinkStore, sqlite_url

NOW = datetime(2026, 12, 2, 3, 0, 0, tzinfo=UTC)


def _service(tmp_path: Path) -> tuple[LinkService, LinkStore]:
    store = LinkStore(sqlite_url(tmp_path))
    secrets = load_or_create(tmp_path)
    service = LinkService(
        store,
        secrets,
        link_path="/c/{token}",
        default_ttl_s=3600,
        default_max_uses=0,
        join_token_ttl_s=900,
        public_base=lambda: "https://x.example",
        credentials=lambda: None,
        clock=lambda: NOW,
    )
    return service, store


def test_link_documents_validate(tmp_path: Path) -> None:
    service, store = _service(tmp_path)
    try:
        row, _ = service.create(professional_id="dra-ana")
        preparing = schema.Link.model_validate(service.to_json(row, lang="en"))
        assert preparing.status is schema.LinkStatus.PREPARING and preparing.url is None
        proof = Proof(NOW, "https://x.example", "[]")
        row, token = service.create(professional_id="dra-ana", proven=proof)
        ready = schema.Link.model_validate(service.to_json(row, lang="en"))
        assert ready.status is schema.LinkStatus.READY
        assert ready.url == f"https://x.example/c/{token}"
        # Times go out as ISO-8601 UTC with Z, exactly as before.
        assert schema.dump(ready)["created_at"] == "2026-12-02T03:00:00Z"
    finally:
        store.close()


def test_status_of_a_stopped_stack_validates(tmp_path: Path) -> None:
    from linkpronto.stack import Stack

    settings = defaults(tmp_path)
    store = LinkStore(sqlite_url(tmp_path))
    try:
        stack = Stack(settings, load_or_create(tmp_path), store, admin_url="http://127.0.0.1:1")
        for lang in ("en", "pt-BR"):
            status = schema.Status.model_validate(stack.status_json(lang))  # type: ignore[arg-type]
            assert status.state is schema.StackState.STOPPED
    finally:
        store.close()


def test_drop_in_ready_from_a_real_link_validates_and_means_something(tmp_path: Path) -> None:
    """The drop-in answer built the way web/dropin.py builds it, from a link the service really issued:
    every value is the link's own (the URL opens the token, the QR and WhatsApp carry that URL)."""
    import base64
    import urllib.parse

    from linkpronto.links.service import SHORT_MESSAGE, qr_data_uri

    service, store = _service(tmp_path)
    try:
        row, token = service.create(professional_id="dra-ana", proven=Proof(NOW, "https://x.example", "[]"))
        doc = service.to_json(row, lang="en")
        url = doc["url"]
        ready = schema.DropInReady(
            token=token, consultationUrl=url, qrCode=qr_data_uri(url), whatsappDeepLink=doc["whatsapp_url"],
            shortMessage=SHORT_MESSAGE.format(url=url).get("en"), expiresAt=doc["expires_at"],
            createdAt=doc["created_at"], verifiedAt=doc["verified_at"], linkId=row.id, room=row.room,
        )
    finally:
        store.close()
    out = schema.dump(ready)
    assert out["success"] is True and out["status"] == "ready" and None not in out.values()
    assert out["consultationUrl"] == f"https://x.example/c/{token}"
    assert url in urllib.parse.unquote(out["whatsappDeepLink"]) and url in out["shortMessage"]
    svg = out["qrCode"]
    assert svg.startswith("data:image/svg+xml")
    payload = svg.split(",", 1)[1]
    text = base64.b64decode(payload).decode() if ";base64" in svg.split(",", 1)[0] else urllib.parse.unquote(payload)
    assert "<svg" in text
    assert out["expiresAt"] > out["createdAt"] and out["verifiedAt"] == "2026-12-02T03:00:00Z"


@pytest.mark.parametrize(
    ("field", "bad"),
    [("token", ""), ("consultationUrl", ""), ("consultationUrl", "not a url"), ("qrCode", ""),
     ("qrCode", "<svg/>"), ("whatsappDeepLink", ""), ("whatsappDeepLink", "https://evil.example/?text=x"),
     ("shortMessage", ""), ("linkId", ""), ("room", "")],
)
def test_drop_in_ready_refuses_empty_or_wrong_values(field: str, bad: str) -> None:
    good = {"token": "t", "consultationUrl": "https://x/c/t", "qrCode": "data:image/svg+xml,%3Csvg%3E",
            "whatsappDeepLink": "https://wa.me/?text=x", "shortMessage": "hi", "expiresAt": NOW,
            "createdAt": NOW, "verifiedAt": NOW, "linkId": "lk_1", "room": "consulta-1"}
    schema.DropInReady.model_validate(good)
    with pytest.raises(ValidationError):
        schema.DropInReady.model_validate({**good, field: bad})
    with pytest.raises(ValidationError):  # success: true cannot be built without a URL
        schema.DropInReady.model_validate({**good, "consultationUrl": None})


def test_drop_in_not_ready_and_invalid_shapes() -> None:
    not_ready = schema.dump(
        schema.DropInNotReady(error="Preparing", code="VERIFY_TIMEOUT", fix="wait", linkId="lk_1", status="preparing")
    )
    assert not_ready["success"] is False and set(not_ready) == {"success", "error", "code", "fix", "linkId", "status"}
    invalid = schema.dump(schema.DropInInvalid(error="bad", fields=[schema.FieldError(field="professionalId", message="x")]))
    assert invalid == {"success": False, "error": "bad", "fields": [{"field": "professionalId", "message": "x"}]}


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        schema.Problem.model_validate({"code": "X", "message": "m", "fix": None, "surprise": 1})
