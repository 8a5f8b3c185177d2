"""The app's output (issue 9, point 6): streamed into ``up``'s output with a name prefix, kept in a bounded
buffer and served by ``linkpronto logs app [-f] [-n N]``.

Real processes: ``python -m linkpronto up --app "<python> app.py PORT"`` with its stdout piped (so no
colours: the prefix is plain ``app     | ``), the LiveKit double as an external LiveKit, and the app, which
prints a line whenever the test drops a file named ``say`` next to it. And when the app fails, the
dashboard shows its last lines under the app step (Chromium).
"""

from __future__ import annotations

import contextlib
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from doubles.livekit_server import RunningDouble
from helpers.lp import cli_env, run_lp, settings_for
from helpers.net import free_port
from helpers.tiers import require

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "linkpronto"]

APP = r'''
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

SAY = Path(__file__).with_name("say")
print("clinic app booting", flush=True)

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

def talk():
    while True:
        if SAY.exists():
            text = SAY.read_text()
            SAY.unlink()
            print(text, flush=True)
        time.sleep(0.05)

threading.Thread(target=talk, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


class Lines:
    """Every line a process writes on stdout, read by a thread (so waits have deadlines)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.q.put(line) for line in stream], daemon=True).start()

    def wait_for(self, needle: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"{needle!r} not seen within {timeout} s; output so far:\n" + "".join(self.seen))


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], Lines]]:
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, Lines(proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_app_output_streams_into_up_and_logs(tmp_path: Path, livekit_double: RunningDouble) -> None:
    public_port, admin_port, app_port = free_port(), free_port(), free_port()
    folder = tmp_path / "app"
    folder.mkdir()
    script = folder / "app.py"
    script.write_text(APP)
    env = cli_env(tmp_path / "data", livekit_double.url, public_port, admin_port,
                  LINKPRONTO_APP_COMMAND=shlex.join([sys.executable, str(script), str(app_port)]),
                  LINKPRONTO_APP_PORT=str(app_port))
    with running([*CLI, "up"], env, tmp_path) as (_up, out):
        out.wait_for("app     | clinic app booting", timeout=30)
        ready = subprocess.run([*CLI, "status", "--wait-ready", "30"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
        assert ready.returncode == 0, ready.stdout + ready.stderr
        # A line the app prints appears in up's output, prefixed with the app's name, within 3 s.
        (folder / "say").write_text("GET /api/hello 200 in 12ms [nonce-1]")
        line = out.wait_for("[nonce-1]", timeout=3)
        assert line.startswith("app     | GET /api/hello 200 in 12ms [nonce-1]"), line

        # ...and is kept for `linkpronto logs app`.
        res = subprocess.run([*CLI, "logs", "app", "-n", "5"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[-1] == "GET /api/hello 200 in 12ms [nonce-1]"
        assert "clinic app booting" in res.stdout
        res = subprocess.run([*CLI, "logs", "app", "-n", "1"], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=30)
        assert res.stdout.splitlines() == ["GET /api/hello 200 in 12ms [nonce-1]"]
        res = subprocess.run([*CLI, "logs", "nginx"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=30)
        assert res.returncode == 2

        # `logs -f` follows: a new line arrives without running it again.
        with running([*CLI, "logs", "app", "-f", "-n", "0"], env, tmp_path) as (_, follow):
            time.sleep(1.0)  # let it take its first snapshot
            (folder / "say").write_text("compiled /consultations/client/[token] [nonce-2]")
            assert follow.wait_for("[nonce-2]", timeout=5).strip() == "compiled /consultations/client/[token] [nonce-2]"
        out.wait_for("[nonce-2]", timeout=3)


CRASH = r'''
import sys
print("booting clinic app", flush=True)
print("Error: DATABASE_URL is not set (pages/api/db.js:3)", file=sys.stderr, flush=True)
sys.exit(3)
'''


async def test_dashboard_shows_the_apps_last_lines_when_it_fails(tmp_path: Path, livekit_double: RunningDouble) -> None:
    require(Path("/usr/bin/chromium").is_file(), "chromium (/usr/bin/chromium)")
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    port = free_port()
    settings = settings_for(tmp_path / "data", livekit_url=livekit_double.url,
                            app={"command": shlex.join([sys.executable, str(script)]), "port": port})
    async with run_lp(settings) as lp:
        await lp.wait_state("failed", timeout=60)
        logs = (await lp.admin.get("/api/logs", params={"component": "app", "n": 5})).json()
        assert [x["line"] for x in logs["lines"]][-1] == "Error: DATABASE_URL is not set (pages/api/db.js:3)"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                               args=["--headless=new", "--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page()
                await page.goto(lp.running.dashboard_url)  # the one-time URL `up` prints
                tail = page.locator("li[data-name='app'] #app-log-tail")
                await expect(tail).to_contain_text("DATABASE_URL is not set", timeout=15_000)
                await expect(tail).to_contain_text("booting clinic app")
            finally:
                await browser.close()
