"""Issue 19 findings 11 and 12: link tokens and LiveKit JWTs never reach ``up``'s output, ``linkpronto
logs``, ``/api/logs`` or ``serve``'s log, whatever the app or a library prints."""

from __future__ import annotations

import io
import logging
import secrets

import pytest

from linkpronto import keys
from linkpronto.paths import PROBE_TOKEN
from linkpronto.redaction import REDACTED_TOKEN, RedactingFilter, redact
from linkpronto.supervise.logtail import OutputHub, OutputTail

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwYXRpZW50Iiwicm9vbSI6ImNvbnN1bHRhIn0.c2lnbmF0dXJlX2hlcmU"


@pytest.mark.parametrize("token", [keys.new_token() for _ in range(50)]
                         + [secrets.token_urlsafe(24), secrets.token_hex(16), "Zme8Facbc-BJtL4ZGGLzVG8Z_oN26YmO",
                            "qxvbnmzlkwjhgfdsapoiuytre"])
def test_a_token_in_any_link_path_is_redacted(token: str) -> None:
    for line in (f"GET /consultations/client/{token} 200 in 12ms", f" GET /_linkpronto/c/{token}?x=1 304",
                 f'"path":"/c/{token}"', f"/sala/{token}/entrar"):
        out = redact(line)
        assert token not in out and REDACTED_TOKEN in out, out


def test_jwts_and_access_token_values_are_redacted() -> None:
    line = f"HTTP Request: GET http://127.0.0.1:7880/rtc/validate?access_token={JWT}&auto_subscribe=1 200 OK"
    out = redact(line)
    assert JWT not in out and "eyJ" not in out and "auto_subscribe=1" in out
    assert JWT not in redact(f"Authorization: Bearer {JWT}")


@pytest.mark.parametrize("line", [
    "GET /api/generate-consultation-token 200 in 40ms",
    "GET /_next/static/chunks/pages/_app-7f3a9c1b2d4e5f60.js 200",
    " ○ Compiling /consultations/client/[token] ...",
    "✓ Ready in 2.1s",
    f"GET /c/{PROBE_TOKEN} 200",
])
def test_ordinary_lines_are_kept_as_they_are(line: str) -> None:
    assert redact(line) == line


def test_the_app_output_tail_and_hub_keep_no_token() -> None:
    token = keys.new_token()
    hub = OutputHub()
    tail = OutputTail(10, redact=("s3cret-value",), on_line=hub.sink("app"))
    tail.feed(f"GET /consultations/client/{token} 200 s3cret-value access_token={JWT}".encode())
    kept = [*tail.lines, *(line.line for line in hub.tail("app", 10))]
    assert kept and all(token not in t and JWT not in t and "s3cret-value" not in t for t in kept)


def test_logging_records_are_redacted_before_any_handler_writes() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("lp-test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("HTTP Request: %s %s", "GET", f"http://x/rtc/validate?access_token={JWT}")
    finally:
        logger.removeHandler(handler)
    assert JWT not in stream.getvalue() and REDACTED_TOKEN in stream.getvalue()


def test_serve_logs_no_request_url_of_httpx_and_redacts_the_rest() -> None:
    from linkpronto.production import configure_logging

    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore")}
    try:
        configure_logging()
        logging.getLogger("httpx").info("HTTP Request: GET http://lk/rtc/validate?access_token=%s", JWT)
        logging.getLogger("linkpronto.gateway").warning("upstream refused /rtc?access_token=%s", JWT)
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    text = stream.getvalue()
    assert "HTTP Request" not in text and JWT not in text and "upstream refused" in text


@pytest.mark.parametrize("path", ["/tmp/pytest-of-root/pytest-276/test_env_and_cwd_reach_the_chi0",
                                  "/api/generate-consultation-token", "/work/wt/lkmedia/test-artifacts/media_real"])
def test_paths_that_are_slugs_are_kept(path: str) -> None:
    assert redact(f"hello {path}") == f"hello {path}"
