"""The one error tree: every stable code is a class in errors.py, and no code travels as a bare string."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from linkpronto import errors
from linkpronto.i18n import Text

SRC = Path(errors.__file__).resolve().parent


def _codes() -> dict[str, type[errors.LinkprontoError]]:
    return errors.all_codes()


def test_every_code_is_a_class_with_both_languages() -> None:
    codes = _codes()
    # The codes users and the contract rely on are all in the tree.
    for code in ("RATE_LIMITED", "BODY_TOO_LARGE", "INVALID_REQUEST", "LISTENER_FAILED", "EVENTS_UNDELIVERED",
                 "NOT_STOPPED", "VERIFY_TIMEOUT", "WEBHOOK_REJECTED", "ASSETS_MISSING", "DB_CORRUPT",
                 "DB_DRIVER_MISSING", "DISK_FULL", "DB_FILE_MISSING", "DB_FILE_REPLACED", "FORBIDDEN_HOST",
                 "FORBIDDEN_ORIGIN", "UNAUTHORIZED", "APP_CRASH_LOOP", "LIVEKIT_CRASH_LOOP"):
        assert code in codes, code
    for code, cls in codes.items():
        assert issubclass(cls, errors.LinkprontoError)
        assert cls.__module__ == "linkpronto.errors", f"{code} lives outside the tree: {cls.__module__}"
        for text in (cls.default_message, cls.default_fix):
            if text is not None:
                assert isinstance(text, Text) and text.pt.strip() and text.en.strip(), code


def test_the_classes_other_modules_name_are_the_tree_s() -> None:
    from linkpronto.events import webhook
    from linkpronto.links import health
    from linkpronto.web import assets

    assert webhook.WebhookRejected is errors.WebhookRejected
    assert assets.AssetsMissing is errors.AssetsMissing
    for name in ("StorageFault", "DbCorrupt", "DbDriverMissing", "DiskFull", "DbFileMissing", "DbFileReplaced"):
        assert getattr(health, name) is getattr(errors, name)
    rejected = errors.WebhookRejected("bad signature")
    assert rejected.reason == rejected.detail == "bad signature" and rejected.code == "WEBHOOK_REJECTED"


def _bare_codes(path: Path, codes: set[str]) -> list[str]:
    text = path.read_text("utf-8")
    if not any(c in text for c in codes):
        return []  # no code spelled anywhere in the file: nothing to parse
    tree = ast.parse(text)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in codes:
            where = path.relative_to(SRC) if path.is_relative_to(SRC) else path.name
            found.append(f"{where}:{node.lineno}: {node.value!r}")
    return found


def test_no_code_is_passed_as_a_bare_string() -> None:
    codes = set(_codes()) - {"LINKPRONTO_ERROR"}
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "errors.py" or "migrations" in path.parts:
            continue
        offenders += _bare_codes(path, codes)
    assert offenders == []


def test_the_guard_sees_a_bare_code(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text('def f():\n    raise Exception(code="RATE_LIMITED")\n', "utf-8")
    assert _bare_codes(bad, {"RATE_LIMITED"}) == ["probe.py:2: 'RATE_LIMITED'"]


def test_links_health_and_store_import_in_either_order() -> None:
    """The circle health ↔ store is gone: store needs nothing from health."""
    tree = ast.parse((SRC / "links" / "store.py").read_text("utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "linkpronto.links.health" not in imported


@pytest.mark.parametrize("cls,status", [(errors.ForbiddenHost, 403), (errors.ForbiddenOrigin, 403),
                                        (errors.Unauthorized, 401), (errors.DiskFull, 507)])
def test_statuses_ride_with_their_class(cls: type[errors.LinkprontoError], status: int) -> None:
    assert cls.status == status
