"""A real ``next dev`` (Next.js 16, Pages Router, no ``allowedDevOrigins``) behind AppProxy, reached
through a real ``ssh -R`` tunnel under a non-local host name, in headless Chromium.

The fixture app is ``tests/fixtures/nextapp``. Its dependencies are installed once with ``npm install``
into a cache directory outside the repository (``$LINKPRONTO_TEST_CACHE/nextapp``, default
``~/.cache/linkpronto-tests/nextapp``), reinstalled only when ``package.json`` changes; the sources are
copied over it at every run.

What next dev 16.4 does to a non-local host without the gateway (observed, and asserted below): the
page is served and, in the Pages Router, even hydrates (its ``<script>`` tags are same-origin no-cors
requests without ``Origin``), but the HMR WebSocket (``/_next/hmr`` with Turbopack,
``/_next/webpack-hmr`` with webpack) is refused as a cross-origin dev request, so Fast Refresh is dead
and ``next dev`` logs "Blocked cross-origin request". Through the gateway it connects and edits apply.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from fixtures.sshd import SshServer, sshd_available
from gateway.servers import RunningServer, WithLifespan, free_port, serve
from helpers.tiers import require
from linkpronto.gateway import AppProxy

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nextapp"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Names under .example resolve to the loopback: a host that is neither localhost nor an IP.
    "--host-resolver-rules=MAP *.example 127.0.0.1",
]  # fmt: skip
NPM = shutil.which("npm")
NPX = shutil.which("npx")


def cache_dir() -> Path:
    root = os.environ.get("LINKPRONTO_TEST_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "linkpronto-tests"
    return base / "nextapp"


def prepare_app() -> Path:
    """Copy the fixture into the cache dir and ``npm install`` there when package.json changed."""
    app = cache_dir()
    app.mkdir(parents=True, exist_ok=True)
    package = (FIXTURE / "package.json").read_bytes()
    stamp = hashlib.sha256(package).hexdigest()
    stamp_file = app / ".installed-from"
    shutil.copy2(FIXTURE / "package.json", app / "package.json")
    shutil.copy2(FIXTURE / "next.config.js", app / "next.config.js")
    shutil.rmtree(app / "pages", ignore_errors=True)
    # A run killed mid-test can leave next dev's build cache out of step with the pages (HMR then
    # never applies an edit): every run starts from a clean build, the npm install stays cached.
    shutil.rmtree(app / ".next", ignore_errors=True)
    shutil.copytree(FIXTURE / "pages", app / "pages")
    installed = (app / "node_modules" / "next" / "package.json").is_file()
    if not installed or not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
        assert NPM is not None
        subprocess.run([NPM, "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=app,
                       check=True, timeout=600, stdin=subprocess.DEVNULL)
        stamp_file.write_text(stamp)
    return app


@dataclass
class NextDev:
    port: int
    app: Path
    process: subprocess.Popen[str]
    output: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=400))

    def log(self) -> str:
        return "\n".join(self.output)


def _kill_tree(process: subprocess.Popen[str]) -> None:
    try:
        parent = psutil.Process(process.pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        procs = []
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)
    process.wait(timeout=5)


@pytest.fixture(scope="module")
def next_dev() -> Iterator[NextDev]:
    require(NPM is not None and NPX is not None, "node and npm (Node.js 20+)")
    require(CHROMIUM.is_file(), "chromium (/usr/bin/chromium)")
    app = prepare_app()
    port = free_port()
    env = {**os.environ, "NEXT_TELEMETRY_DISABLED": "1", "BROWSER": "none", "NO_COLOR": "1"}
    # Like the user does it: `next dev -p N`, no -H (so only localhost is a trusted dev origin).
    process = subprocess.Popen([NPX, "next", "dev", "-p", str(port)], cwd=app, env=env, text=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    dev = NextDev(port, app, process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            dev.output.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise AssertionError("next dev exited:\n" + dev.log())
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("next dev did not answer in time:\n" + dev.log())
            time.sleep(0.2)
        yield dev
    finally:
        _kill_tree(process)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def gateway(next_dev: NextDev) -> Iterator[RunningServer]:
    proxy = AppProxy(lambda: f"http://127.0.0.1:{next_dev.port}", lambda: None)
    with serve(WithLifespan(proxy)) as server:
        yield server


@pytest.fixture(scope="module")
def tunnel_url(gateway: RunningServer) -> Iterator[str]:
    """``http://clinic.example:<port>``: the gateway through a real ``ssh -R`` reverse forward."""
    require(sshd_available(), "openssh-server (/usr/sbin/sshd) and the ssh client")
    remote = free_port()
    with SshServer() as sshd:
        argv = ["ssh", *sshd.client_options(), "-N", "-p", str(sshd.port),
                "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=5",
                "-R", f"127.0.0.1:{remote}:127.0.0.1:{gateway.port}", f"{sshd.user}@127.0.0.1"]
        ssh = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 15
            while True:
                if ssh.poll() is not None:
                    raise AssertionError(f"ssh -R failed: {ssh.stderr.read() if ssh.stderr else ''}")
                try:
                    httpx.get(f"http://127.0.0.1:{remote}/", timeout=5)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield f"http://clinic.example:{remote}"
        finally:
            ssh.terminate()
            try:
                ssh.wait(timeout=5)
            except subprocess.TimeoutExpired:
                ssh.kill()
                ssh.wait(timeout=5)
            if ssh.stderr is not None:
                ssh.stderr.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class SocketLog:
    urls: list[str] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def watch_sockets(page: Any) -> SocketLog:
    log = SocketLog()

    def on_ws(ws: Any) -> None:
        log.urls.append(ws.url)
        ws.on("framereceived", lambda payload: log.frames.append(str(payload)[:200]))
        ws.on("close", lambda _ws: log.closed.append(ws.url))
        ws.on("socketerror", lambda error: log.errors.append(str(error)))

    page.on("websocket", on_ws)
    return log


def _hmr(urls: list[str]) -> list[str]:
    return [u for u in urls if "/_next/" in u and "hmr" in u]


def test_hydrates_and_hmr_connects_through_gateway(browser: Any, next_dev: NextDev, tunnel_url: str) -> None:
    page = browser.new_page()
    try:
        sockets = watch_sockets(page)
        page.goto(tunnel_url + "/", wait_until="domcontentloaded")
        page.wait_for_selector("#hydration:text('hydrated')", timeout=30_000)
        assert page.text_content("#title") == "Not clicked yet"
        page.click("#btn")
        page.wait_for_selector("#title:text('Clicked after hydration')", timeout=5_000)
        _wait(page, lambda: bool(sockets.frames), 15, "no HMR frame through the gateway")
        hmr = _hmr(sockets.urls)
        assert hmr and hmr[0].startswith(tunnel_url.replace("http", "ws", 1))
        assert not sockets.errors
        # Client-side navigation (fetches the page's chunks through /_next/...), then a live edit
        # pushed over HMR and applied without a reload.
        page.click("#other-link")
        page.wait_for_selector("#title:text('Other page')", timeout=30_000)
        other = next_dev.app / "pages" / "other.js"
        original = other.read_text()
        try:
            other.write_text(original.replace("Other page</h1>", "Other page, edited</h1>"))
            page.wait_for_selector("#title:text('Other page, edited')", timeout=30_000)
        finally:
            other.write_text(original)
        assert page.url == tunnel_url + "/other"  # no full reload to another address
        assert "Blocked cross-origin" not in next_dev.log()
    finally:
        page.close()


def test_without_gateway_next_dev_refuses_hmr_from_other_host(browser: Any, next_dev: NextDev) -> None:
    page = browser.new_page()
    try:
        sockets = watch_sockets(page)
        page.goto(f"http://direct.example:{next_dev.port}/", wait_until="domcontentloaded")
        _wait(page, lambda: bool(_hmr(sockets.urls)) and bool(sockets.closed or sockets.errors), 30,
              "the HMR socket neither opened nor failed")
        page.wait_for_timeout(500)
        assert not sockets.frames
        _wait(page, lambda: 'Blocked cross-origin request to Next.js dev resource' in next_dev.log(), 5,
              "next dev did not log the blocked request:\n" + next_dev.log())
        assert '"direct.example"' in next_dev.log()
    finally:
        page.close()


def _wait(page: Any, predicate: Any, timeout: float, message: str) -> None:
    """Poll while letting Playwright deliver its events (they arrive only inside its own calls)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        page.wait_for_timeout(50)


if __name__ == "__main__":  # pragma: no cover - `python tests/gateway/test_nextjs.py` prepares the cache
    print(prepare_app())
    sys.exit(0)
