"""Issue 16 points 2 and 9: the drop-in and the admin API take the app's own room name, and the patient
joins that room; tokens survive WhatsApp's formatting; the app's own message wording is kept.

Fast tier: linkpronto's listeners and the LiveKit double in this process."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import pytest

from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from linkpronto import keys

URL_RE = re.compile(r"https?://[^\s]+")


def whatsapp_format(text: str) -> list[tuple[str, str]]:
    """WhatsApp's inline formatting, as it renders a message: ``_x_`` italic, ``*x*`` bold, ``~x~``
    strike (a marker pair around non-space text, the opening one at a word start). Returns the text
    runs with their style; the markers themselves disappear, which is what mangles a link."""
    runs: list[tuple[str, str]] = []
    styles = {"_": "italic", "*": "bold", "~": "strike"}
    pattern = re.compile(r"(?<![\w])([_*~])(?=\S)(.+?)(?<=\S)\1(?![\w])")
    pos = 0
    for m in pattern.finditer(text):
        runs.append((text[pos:m.start()], "plain"))
        runs.append((m.group(2), styles[m.group(1)]))
        pos = m.end()
    runs.append((text[pos:], "plain"))
    return [r for r in runs if r[0]]


def test_whatsapp_format_mangles_an_old_style_token() -> None:
    # The check below is meaningful: an old base64url token may start with `_` and hold another one.
    url = "https://x.example/consultations/client/_me8Facbc-BJtL4Z_GLzVG8ZoN26YmO"
    rendered = "".join(t for t, _ in whatsapp_format(f"Acesse: {url} _obrigado_"))
    assert url not in rendered


def test_new_tokens_are_whatsapp_safe_and_still_128_bits() -> None:
    for _ in range(200):
        token = keys.new_token()
        assert re.fullmatch(r"[a-z2-7]{39}", token), token  # 24 random bytes → 192 bits
        assert token == token.lower()


async def test_drop_in_uses_the_apps_room_and_words_and_the_patient_joins_it(
    tmp_path: Path, livekit_inproc: InProcessDouble,
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        template = "Olá! Sua consulta (_{type}_) com {name} está pronta. Acesse: {url} *Até já!*"
        res = await lp.admin.post("/api/generate-consultation-token", json={
            "professionalId": "dra-ana", "consultationType": "psicoterapia", "roomName": "consulta-dra-ana",
            "messageTemplate": template})
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["room"] == "consulta-dra-ana"
        url = body["consultationUrl"]
        token = body["token"]
        assert "_" not in token and "-" not in token and url.endswith("/" + token)
        assert body["shortMessage"] == template.replace("{type}", "psicoterapia").replace(
            "{name}", "dra-ana").replace("{url}", url)
        assert urllib.parse.unquote(body["whatsappDeepLink"].split("?text=", 1)[1]) == body["shortMessage"]
        # WhatsApp's formatting pass leaves the URL whole (the template's own _x_ and *x* are styled).
        runs = whatsapp_format(body["shortMessage"])
        assert ("psicoterapia", "italic") in runs and ("Até já!", "bold") in runs
        assert any(url == found for text, style in runs if style == "plain" for found in URL_RE.findall(text))

        # The patient joins the app's room.
        grant = await lp.public.post("/_linkpronto/api/join", json={"token": token})
        assert grant.status_code == 200, grant.text
        assert grant.json()["room"] == "consulta-dra-ana"

        # `room` is the alias; without either, linkpronto's own room; the admin API takes `room` too.
        alias = await lp.admin.post("/api/generate-consultation-token",
                                    json={"professionalId": "dra-ana", "room": "consulta-x1"})
        assert alias.json()["room"] == "consulta-x1"
        own = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"})
        assert re.fullmatch(r"consulta-[0-9a-f]{16}", own.json()["room"])
        assert "Here is the link" in own.json()["shortMessage"]  # no template: linkpronto's words
        admin = await lp.admin.post("/api/consultation-links", json={"professional_id": "a", "room": "consulta-y"})
        assert admin.status_code == 201, admin.text
        assert admin.json()["room"] == "consulta-y"

        # Validated: LiveKit-safe characters, ≤ 64, never linkpronto's own probe room.
        for bad in ("", "a" * 65, "consulta dra", "../x", "linkpronto-probe", "-x", "sala/1"):
            r = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "a", "roomName": bad})
            assert r.status_code == 400 and r.json()["success"] is False, (bad, r.text)
            r = await lp.admin.post("/api/consultation-links", json={"professional_id": "a", "room": bad})
            assert r.status_code in (400, 422), (bad, r.text)
        r = await lp.admin.post("/api/generate-consultation-token",
                                json={"professionalId": "a", "messageTemplate": "sem o link"})
        assert r.status_code == 400


async def test_old_style_tokens_still_resolve(
    tmp_path: Path, livekit_inproc: InProcessDouble, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        monkeypatch.setattr(keys, "new_token", lambda: "Zme8Facbc-BJtL4ZGGLzVG8Z_oN26YmO")
        made = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"})
        assert made.json()["token"] == "Zme8Facbc-BJtL4ZGGLzVG8Z_oN26YmO"
        monkeypatch.undo()
        grant = await lp.public.post("/_linkpronto/api/join", json={"token": "Zme8Facbc-BJtL4ZGGLzVG8Z_oN26YmO"})
        assert grant.status_code == 200, grant.text
