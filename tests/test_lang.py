"""The language is chosen once, at rendering: a stack with failures, read in English and in pt-BR through
the API (``?lang=``), the SSE stream and ``linkpronto status`` (``LINKPRONTO_LANG``), shows one language.

The stack fails for real: a ``static`` public URL that leads nowhere (VERIFY_FAILED), plain HTTP
(INSECURE_ORIGIN) and a LiveKit on this machine (MEDIA_SAME_NETWORK_ONLY)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import cli_env, run_lp, settings_for
from helpers.net import free_port
from linkpronto.i18n import Text, accept_language, pick_lang, render, set_default_lang

# Words and letters that only one of the two languages uses (identifiers, URLs and codes aside).
PORTUGUESE = re.compile(r"[ãõçáéíóúâêôà]|\b(não|para|com|está|uma|aguarde|ainda|nesta|verificação|endereço)\b", re.I)
ENGLISH = re.compile(
    r"\b(the|is|not|and|with|could|did|was|has|failed|check|waiting|running|starting|answered|"
    r"address|yet|only|devices|network|connection|wait|your|restart)\b",
    re.I,
)


def human_text(status: dict[str, Any]) -> list[str]:
    """Every field of a Status meant for a person (not codes, states, URLs or technical detail)."""
    out = [status.get("reason") or ""]

    def problem(p: dict[str, Any] | None) -> None:
        if p:
            out.extend([p.get("message") or "", p.get("fix") or ""])

    for p in status["problems"]:
        problem(p)
    for part in status["components"].values():
        out.append(part.get("detail") or "")
        problem(part.get("error"))
    tunnel = status["tunnel"]
    out.extend([tunnel.get("detail") or "", tunnel.get("tradeoff") or ""])
    problem(tunnel.get("last_error"))
    for check in status["verification"]["checks"]:
        out.extend([check.get("detail") or "", check.get("fix") or ""])
    out.append(status["media"].get("detail") or "")
    return [t for t in out if t]


def assert_only(lang: str, texts: list[str]) -> None:
    other = ENGLISH if lang == "pt-BR" else PORTUGUESE
    leaks = [t for t in texts if other.search(t)]
    assert not leaks, f"{lang} answer shows the other language: {leaks}"


async def _failing_stack(tmp_path: Path, livekit_double: RunningDouble) -> Any:
    nowhere = f"http://127.0.0.1:{free_port()}"
    return settings_for(tmp_path / "d", livekit_url=livekit_double.url, static_url=nowhere)


@pytest.mark.slow
async def test_status_api_sse_and_cli_speak_one_language(tmp_path: Path, livekit_double: RunningDouble) -> None:
    settings = await _failing_stack(tmp_path, livekit_double)
    async with run_lp(settings) as lp:
        deadline = asyncio.get_running_loop().time() + 20
        codes: set[str] = set()
        while asyncio.get_running_loop().time() < deadline:
            status = (await lp.admin.get("/api/status")).json()
            codes = {p["code"] for p in status["problems"]}
            if {"VERIFY_FAILED", "INSECURE_ORIGIN", "MEDIA_SAME_NETWORK_ONLY"} <= codes:
                break
            await asyncio.sleep(0.05)
        assert {"VERIFY_FAILED", "INSECURE_ORIGIN", "MEDIA_SAME_NETWORK_ONLY"} <= codes, codes

        for lang in ("en", "pt-BR"):
            doc = (await lp.admin.get("/api/status", params={"lang": lang})).json()
            texts = human_text(doc)
            assert len(texts) >= 8
            assert_only(lang, texts)
            # The SSE stream renders in the client's language too.
            async with lp.admin.stream("GET", "/api/status/stream", params={"lang": lang}) as res:
                async for line in res.aiter_lines():
                    if line.startswith("data: "):
                        assert_only(lang, human_text(json.loads(line[6:])))
                        break
        # Accept-Language picks the language when there is no ?lang=.
        doc = (await lp.admin.get("/api/status", headers={"Accept-Language": "en-US,en;q=0.9"})).json()
        assert_only("en", human_text(doc))

        # `linkpronto status` speaks LINKPRONTO_LANG.
        for lang in ("en", "pt-BR"):
            env = cli_env(settings.data_dir, livekit_double.url, lp.running.public_port,
                          settings.server.admin_port, LINKPRONTO_LANG=lang)
            res = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "linkpronto", "status"],
                env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
            )
            assert res.returncode == 0, res.stderr
            lines = [ln for ln in res.stdout.splitlines() if ln.strip() and "error[" not in ln]
            assert "VERIFY_FAILED" in res.stdout
            assert_only(lang, lines)


def test_accept_language_and_query() -> None:
    assert accept_language("en-US,en;q=0.9,pt;q=0.8") == "en"
    assert accept_language("pt-BR,pt;q=0.9,en;q=0.8") == "pt-BR"
    assert accept_language("fr-FR, en;q=0.5, pt;q=0.7") == "pt-BR"  # by q, not by order
    assert accept_language("fr-FR") is None
    assert accept_language("en;q=0, pt") == "pt-BR"
    assert pick_lang("en", "pt-BR") == "en"
    assert pick_lang(None, "en-GB") == "en"


def test_the_process_language_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKPRONTO_LANG", "en")
    set_default_lang(None)
    try:
        assert Text("olá", "hello").get() == "hello"
        monkeypatch.setenv("LINKPRONTO_LANG", "pt-BR")
        assert Text("olá", "hello").get() == "hello"  # not read again per call
        assert pick_lang(None, None) == "en"
    finally:
        set_default_lang(None)


def test_stored_messages_render_in_either_language() -> None:
    stored = Text("Confira o túnel.", "Check the tunnel.").to_json()
    assert render(stored, "en") == "Check the tunnel." and render(stored, "pt-BR") == "Confira o túnel."
    assert render("plain (0.1.0 row)", "en") == "plain (0.1.0 row)"
    assert render(None, "en") is None


async def test_rtc_errors_speak_the_requests_language() -> None:
    import httpx

    from linkpronto.gateway.rtc import RtcProxy

    proxy = RtcProxy(lambda: None)  # LiveKit not available: 503 from the gateway itself
    transport = httpx.ASGITransport(app=proxy)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            en = await client.get("/rtc/validate", headers={"Accept-Language": "en-US"})
            pt = await client.get("/rtc/validate", params={"lang": "pt-BR"}, headers={"Accept-Language": "en"})
            missing = await client.get("/rtc/nothing", params={"lang": "en"})
    finally:
        await proxy.aclose()
    assert en.status_code == pt.status_code == 503
    assert_only("en", [en.text])
    assert_only("pt-BR", [pt.text])
    assert en.text != pt.text and "LiveKit" in en.text and "LiveKit" in pt.text
    assert missing.status_code == 404 and missing.text == "Not Found"
