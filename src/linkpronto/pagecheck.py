"""The page rung: the app's link page opened as a phone would, through the public URL.

The ladder's ``link_route`` rung only proves the page's HTML answers 2xx. A page whose own data call
fails (``/api/public/professional`` answering 500) is still broken for the patient. This rung opens
``public_url + link_path`` (with the probe token) in a headless Chromium at 390×844 (a phone), waits
until the network is quiet and reports:

* same-origin requests that failed: HTTP status ≥ 400, or no answer at all (network failure);
* script errors: uncaught exceptions (``pageerror``) and ``console.error`` messages.

It fails (``PAGE_BROKEN``, a required check: the stack is not ``ready`` and links wait) for a
same-origin answer ≥ 500, a same-origin request with no answer, or an uncaught exception. A 4xx
(a probe link is an unknown link: a page may well ask the app about it and get a 404) and
``console.error`` lines are reported in the detail but do not fail the rung.

It runs on its own, slower cadence (``verify.page_interval``; a failing page is retried sooner) in the
background: the ladder attaches the latest result and never waits for a browser, so a link on a
ready stack is never delayed by it. Without a browser (``verify.page_browser``: ``auto`` finds none,
or ``off``) or without Playwright, the check says the page was not checked — not a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from linkpronto.i18n import Text
from linkpronto.verify import BROWSER_UA, Check

log = logging.getLogger(__name__)

NAME = "page"
WIDTH, HEIGHT = 390, 844
RUN_BUDGET_S = 45.0
QUIET_BUDGET_S = 10.0
RETRY_FAILING_S = 15.0
MAX_REPORTED = 8

FIX_PAGE = Text(
    "A página do link do seu app abre, mas uma parte dela falha. Abra a página no navegador com as "
    "ferramentas do desenvolvedor (F12 > Rede / Console), corrija a rota ou a configuração do app que falhou "
    "(por exemplo uma variável de ambiente ausente) e aguarde a próxima verificação.",
    "Your app's link page opens but part of it fails. Open the page in a browser with the developer tools "
    "(F12 > Network / Console), fix the app route or setting that failed (for example a missing environment "
    "variable) and wait for the next check.",
)
FIX_NO_BROWSER = Text(
    "Instale o Chromium (ou Google Chrome) ou indique o caminho em verify.page_browser; "
    "para não verificar a página, verify.page_browser = \"off\".",
    "Install Chromium (or Google Chrome) or give its path in verify.page_browser; "
    "to skip the page check, verify.page_browser = \"off\".",
)
FIX_NO_PLAYWRIGHT = Text(
    "Instale o Playwright no ambiente do linkpronto: pip install playwright.",
    "Install Playwright in linkpronto's environment: pip install playwright.",
)


@dataclass
class PageReport:
    """What one browser run saw (paths only: a query string may carry a token)."""

    failed: list[tuple[str, str, int | None]] = field(default_factory=list)  # (method, path, status|None)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        return bool(self.page_errors) or any(s is None or s >= 500 for _, _, s in self.failed)


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def report_check(report: PageReport, duration_ms: float) -> Check:
    """The ladder's ``page`` check for one run."""
    parts_pt: list[str] = []
    parts_en: list[str] = []
    for method, path, status in report.failed[:MAX_REPORTED]:
        if status is None:
            parts_pt.append(f"{method} {path} sem resposta (falha de rede)")
            parts_en.append(f"{method} {path} got no answer (network failure)")
        else:
            parts_pt.append(f"{method} {path} respondeu HTTP {status}")
            parts_en.append(f"{method} {path} answered HTTP {status}")
    for message in report.page_errors[:MAX_REPORTED]:
        parts_pt.append(f"erro de script: {_short(message)}")
        parts_en.append(f"script error: {_short(message)}")
    for message in report.console_errors[:MAX_REPORTED]:
        parts_pt.append(f"console.error: {_short(message)}")
        parts_en.append(f"console.error: {_short(message)}")
    if report.broken:
        return Check(NAME, False, duration_ms, Text(
            "PAGE_BROKEN: a página do link carrega pelo endereço público, mas " + "; ".join(parts_pt),
            "PAGE_BROKEN: the link page loads through the public URL, but " + "; ".join(parts_en),
        ), FIX_PAGE)
    if parts_pt:
        return Check(NAME, True, duration_ms, Text(
            "a página do link carrega num celular (390×844) pelo endereço público; observado: " + "; ".join(parts_pt),
            "the link page loads on a phone (390×844) through the public URL; seen: " + "; ".join(parts_en),
        ))
    return Check(NAME, True, duration_ms, Text(
        "a página do link carrega num celular (390×844) pelo endereço público, sem pedidos com erro nem erros de script",
        "the link page loads on a phone (390×844) through the public URL with no failing request and no script error",
    ))


def not_checked(why: Text, fix: Text | None = None) -> Check:
    return Check(NAME, True, 0.0, Text("não verificada: " + why.pt, "not checked: " + why.en), fix, required=False)


def _same_origin(url: str, origin: tuple[str, str]) -> bool:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower()) == origin


async def load_page(url: str, browser: Path, *, budget_s: float = RUN_BUDGET_S) -> PageReport:
    """Open ``url`` in headless Chromium as a phone, and report what failed (raises ImportError
    without Playwright; any other exception means the browser could not run)."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    parts = urlsplit(url)
    origin = (parts.scheme.lower(), parts.netloc.lower())
    report = PageReport()

    def on_response(response: Any) -> None:
        if response.status >= 400 and _same_origin(response.url, origin):
            report.failed.append((response.request.method, urlsplit(response.url).path, response.status))

    def on_failed(request: Any) -> None:
        if _same_origin(request.url, origin):
            report.failed.append((request.method, urlsplit(request.url).path, None))

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            report.console_errors.append(message.text)  # a failed load is in ``failed`` already

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(browser),
            headless=True,
            args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-first-run"],
        )
        try:
            context = await chromium.new_context(
                viewport={"width": WIDTH, "height": HEIGHT}, user_agent=BROWSER_UA, is_mobile=True, has_touch=True,
                device_scale_factor=2, permissions=["camera", "microphone"],
                extra_http_headers={"ngrok-skip-browser-warning": "1"},
            )
            page = await context.new_page()
            page.on("response", on_response)
            page.on("requestfailed", on_failed)
            page.on("pageerror", lambda exc: report.page_errors.append(str(exc)))
            page.on("console", on_console)
            await page.goto(url, wait_until="load", timeout=budget_s * 1000)
            with contextlib.suppress(PlaywrightError):
                await page.wait_for_load_state("networkidle", timeout=QUIET_BUDGET_S * 1000)
            await page.close()
            await context.close()
        finally:
            await chromium.close()
    return report


Loader = Callable[[str, Path], Any]


class PageRung:
    """Runs :func:`load_page` in the background on its own cadence and keeps the latest ``page`` check.

    :meth:`check` is what the ladder calls: it returns at once (the latest result for this URL, or a
    "not checked yet" check) and starts a run when one is due.
    """

    def __init__(
        self,
        browser_setting: str,
        interval_s: float,
        *,
        loader: Loader = load_page,
        find: Callable[[str], Path | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if find is None:
            from linkpronto.platform import find_chromium

            find = find_chromium
        self.browser_setting = browser_setting
        self.interval_s = interval_s
        self._loader = loader
        self._find = find
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._url: str | None = None
        self._latest: Check | None = None
        self._ran_at = float("-inf")
        self.runs = 0

    def _due(self, url: str) -> bool:
        if url != self._url:
            return True
        wait = self.interval_s if self._latest is None or self._latest.ok else min(self.interval_s, RETRY_FAILING_S)
        return self._clock() - self._ran_at >= wait

    def check(self, url: str | None) -> Check | None:
        """The ``page`` check for ``url`` now (None: no app page to check)."""
        if url is None:
            return None
        if self.browser_setting.strip().lower() in ("off", "none", "false", ""):
            return not_checked(Text("desativada (verify.page_browser = \"off\")",
                                    "turned off (verify.page_browser = \"off\")"))
        browser = self._find(self.browser_setting)
        if browser is None:
            return not_checked(Text("nenhum Chromium encontrado neste computador",
                                    "no Chromium found on this computer"), FIX_NO_BROWSER)
        if url != self._url:
            self._latest = None
            self._ran_at = float("-inf")
        if self._due(url) and (self._task is None or self._task.done()):
            self._url = url
            self._task = asyncio.create_task(self._run(url, browser), name="page-rung")
        if self._latest is None:
            return not_checked(Text("a primeira abertura da página está em andamento",
                                    "the page's first opening is under way"))
        return self._latest

    async def _run(self, url: str, browser: Path) -> None:
        t0 = time.perf_counter()
        try:
            report = await self._loader(url, browser)
        except ImportError:
            result = not_checked(Text("o Playwright não está instalado", "Playwright is not installed"),
                                 FIX_NO_PLAYWRIGHT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the browser could not run: say so, never fail the stack for it
            log.info("page rung: the browser could not open %s: %s", urlsplit(url).path, exc)
            result = not_checked(Text(f"o navegador não conseguiu abrir a página ({_short(str(exc), 160)})",
                                      f"the browser could not open the page ({_short(str(exc), 160)})"))
        else:
            result = report_check(report, (time.perf_counter() - t0) * 1000)
        self.runs += 1
        if url == self._url:
            self._latest = result
            self._ran_at = self._clock()

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
