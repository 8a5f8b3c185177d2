"""Issue 19 finding 13: a public 503 never describes the infrastructure to an anonymous caller."""

from __future__ import annotations

from linkpronto.errors import DbCorrupt, LinkNotFound, LivekitUnhealthy, StoreUnavailable
from linkpronto.i18n import Text
from linkpronto.web.common import error_body, public_error

INFRA = ("postgresql", "psycopg", "clinic_user", "db.internal", "5432", "links_prod", "/var/lib", "7880")


def _all_text(err: object) -> str:
    body = error_body(public_error(err), "pt")  # type: ignore[arg-type]
    body_en = error_body(public_error(err), "en")  # type: ignore[arg-type]
    return repr(body).lower() + repr(body_en).lower()


def test_store_unavailable_keeps_its_code_and_loses_the_database_details() -> None:
    err = StoreUnavailable(
        Text("O banco (postgresql+psycopg://clinic_user@db.internal:5432/links_prod) caiu",
             "The database (postgresql+psycopg://clinic_user@db.internal:5432/links_prod) is down"),
        detail="OperationalError",
    )
    text = _all_text(err)
    assert public_error(err).code == "STORE_UNAVAILABLE"
    assert not [part for part in INFRA if part in text], text
    assert error_body(public_error(err), "pt")["error"]["fix"]


def test_storage_and_livekit_faults_are_generic_in_public_too() -> None:
    for err in (DbCorrupt(Text("/var/lib/linkpronto/links.db corrompido", "/var/lib/linkpronto/links.db corrupt")),
                LivekitUnhealthy(Text("ws://127.0.0.1:7880 não responde", "ws://127.0.0.1:7880 does not answer"))):
        text = _all_text(err)
        assert public_error(err).code == err.code
        assert not [part for part in INFRA if part in text], text


def test_errors_about_the_link_itself_are_kept_whole() -> None:
    err = LinkNotFound()
    assert public_error(err) is err
