"""Fixtures for the pages' browser tests: Debian's Chromium driven by Playwright, fake camera/mic."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_api import FakeServers  # type: ignore[import-not-found]
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from real_server import RealServer  # type: ignore[import-not-found]

from helpers.chromium import BASE_ARGS, CHROMIUM, FAKE_MEDIA_ARGS, PHONE
from helpers.inproc import InProcessDouble
from linkpronto.web.assets import install_assets, vendor_ready

# The browser tests import the launch flags from this conftest.
__all__ = ["ARTIFACTS", "BASE_ARGS", "CHROMIUM", "FAKE_MEDIA_ARGS", "PHONE"]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web_ui"
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture(scope="session")
def vendored() -> None:
    """livekit-client must be in static/vendor (README set-up: npm install; python -m linkpronto.web.assets)."""
    if not vendor_ready():
        install_assets(ROOT)  # raises AssetsMissing with the fix when npm install was not run


# Module scope: the sync API keeps an event loop running while it is open, which async tests
# (test_e2e_real_stack.py) in another module must not see.
@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw: Playwright, vendored: None) -> Iterator[Browser]:
    b = pw.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS + FAKE_MEDIA_ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture(scope="module")
def bare_browser(pw: Playwright, vendored: None) -> Iterator[Browser]:
    """No fake media UI: permission prompts are not auto-accepted (used for 'denied')."""
    b = pw.chromium.launch(executable_path=CHROMIUM,
                           args=[*BASE_ARGS, "--use-fake-device-for-media-stream",
                                 "--host-resolver-rules=MAP clinic.test 127.0.0.1"],
                           headless=True)
    yield b
    b.close()


@pytest.fixture
def real(tmp_path: Path, livekit_inproc: InProcessDouble) -> Iterator[RealServer]:
    """The real linkpronto (in-process, LiveKit = the double, static tunnel), ready."""
    server = RealServer(tmp_path / "data", livekit_inproc.url).start()
    try:
        server.wait_state("ready")
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake() -> Iterator[FakeServers]:
    servers = FakeServers().start()
    yield servers
    servers.stop()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    made: list[BrowserContext] = []

    def make(**kw: Any) -> BrowserContext:
        # Both servers pick the language as the real one does (?lang=, then Accept-Language): the
        # browser is set to Portuguese, as the patients' are, unless a test says otherwise.
        kw.setdefault("locale", "pt-BR")
        ctx = browser.new_context(**kw)
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    def take(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{request.node.name}-{name}")
        path = ARTIFACTS / f"{safe}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
