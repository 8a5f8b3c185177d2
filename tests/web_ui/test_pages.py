"""linkpronto.web.pages and linkpronto.web.assets without a browser (and the patient page as the real
public listener serves it, with the LiveKit double in-process)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from linkpronto.errors import LinkprontoError
from linkpronto.web import assets
from linkpronto.web.pages import call_html, dashboard_html, patient_html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            self.links.append(a["href"] or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")


def _parse(doc: str) -> _Collect:
    c = _Collect()
    c.feed(doc)
    return c


@pytest.mark.parametrize(
    "doc",
    [
        dashboard_html("pt-BR"),
        call_html("lnk_1", "en"),
        patient_html(state="ok", consultation_type="psicoterapia", lang="pt-BR"),
    ],
)
def test_scripts_and_styles_only_from_own_origin(doc: str) -> None:
    c = _parse(doc)
    assert c.scripts and all(s.startswith("/_linkpronto/static/") for s in c.scripts)
    assert all(h.startswith(("/_linkpronto/static/", "data:")) for h in c.links)
    assert "script-src 'self'" in doc
    for src in c.scripts:  # every referenced file exists in the package
        assert (assets.STATIC_DIR / src.removeprefix("/_linkpronto/static/")).is_file()


def test_default_language_is_portuguese_and_english_by_choice() -> None:
    assert '<html lang="pt-BR">' in dashboard_html("")
    assert "Gerar link" in dashboard_html("pt-BR")
    en = dashboard_html("en-US")
    assert '<html lang="en">' in en and "Create link" in en


def test_both_languages_have_the_same_keys() -> None:
    table = json.loads((assets.STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))
    assert set(table["pt-BR"]) == set(table["en"])
    js = "".join(p.read_text(encoding="utf-8") for p in assets.STATIC_DIR.glob("*.js"))
    used = set(re.findall(r"""\bt\(\s*["']([a-z_.-]+)["']""", js))
    assert used - set(table["pt-BR"]) == set()


def test_patient_page_escapes_consultation_type() -> None:
    doc = patient_html(state="ok", consultation_type='<img src=x onerror=alert(1)>"', lang="pt-BR")
    assert "<img src=x" not in doc
    assert "&lt;img src=x onerror=alert(1)&gt;" in doc
    data = re.search(r'<script type="application/json" id="lp-data">(.*?)</script>', doc, re.S)
    assert data and json.loads(data.group(1))["consultation_type"].startswith("<img")


def test_patient_page_has_the_join_controls() -> None:
    c = _parse(patient_html(state="ok", consultation_type=None, lang="pt-BR"))
    assert {"preview", "display-name", "join", "media-help"} <= c.ids


async def test_patient_page_never_contains_the_token(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    """The real listener renders the page for a real token: the link's own data is on it (so it was
    rendered for that link), the token is nowhere in its bytes or headers — the page reads it from
    its own address."""
    async with run_lp(settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)) as lp:
        await lp.wait_state("ready")
        res = await lp.admin.post("/api/consultation-links",
                                  json={"professional_id": "dra-ana", "consultation_type": "fonoaudiologia"})
        assert res.status_code == 201, res.text
        link = res.json()
        token = link["url"].rsplit("/", 1)[1]
        for path in (f"/_linkpronto/c/{token}", f"/c/{token}"):
            page = await lp.public.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert "fonoaudiologia" in page.text
            assert token not in page.text
            assert all(token not in value for value in page.headers.values())
            assert token[:12] not in page.text  # nor a prefix of it
        # Nor the page that says the link is gone.
        assert (await lp.admin.delete(f"/api/consultation-links/{link['id']}")).status_code == 200
        gone = await lp.public.get(f"/_linkpronto/c/{token}")
        assert gone.status_code == 410 and token not in gone.text


@pytest.mark.parametrize(
    ("state", "text"),
    [
        ("not_found", "Não encontramos este link"),
        ("expired", "expirou"),
        ("revoked", "cancelado"),
        ("exhausted", "número máximo"),
    ],
)
def test_gone_pages_are_calm_and_scriptless(state: str, text: str) -> None:
    doc = patient_html(state=state, consultation_type="x", lang="pt-BR")  # type: ignore[arg-type]
    assert text in doc and "novo link" in doc
    assert not _parse(doc).scripts


def test_device_test_link_gets_the_test_page() -> None:
    doc = patient_html(state="ok", consultation_type="teste-de-dispositivo", lang="en")
    assert "Test my device" in doc and '"device_test":true' in doc


def test_install_assets_copies_the_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "proj" / "node_modules" / "livekit-client" / "dist"
    dist.mkdir(parents=True)
    (dist / "livekit-client.umd.js").write_text("/* bundle */")
    vendor = tmp_path / "static" / "vendor"
    monkeypatch.setattr(assets, "VENDOR_DIR", vendor)
    assert not assets.vendor_ready()
    installed = assets.install_assets(tmp_path / "proj")
    assert installed == vendor / "livekit-client.umd.js"
    assert installed.read_text() == "/* bundle */"
    assert assets.vendor_ready()


def test_install_assets_without_npm_install_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(assets.AssetsMissing) as info:
        assets.install_assets(tmp_path)
    err: LinkprontoError = info.value
    assert err.code == "ASSETS_MISSING"
    assert "npm install" in (err.fix("en") or "")


def test_assets_main_reports_error_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert assets.main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error[ASSETS_MISSING]:") and "fix: " in err
