"""The CLI's terminal faces under a real pseudo-terminal: ``up``'s live status table and QR panel,
``link create``'s link with a terminal QR, ``status``'s table.

The commands run as real processes on the slave side of ``os.openpty()`` (so rich sees a terminal,
100 columns), against the LiveKit test double (external mode) with tunnel ``static`` pointing at
linkpronto's own public port. What they draw is replayed on a small screen model (:class:`Screen`)
to get what a person would see, without ANSI escapes; ``up``'s screen is kept as
``test-artifacts/console/up.txt``.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import segno

from doubles.livekit_server import RunningDouble
from helpers.lp import TEST_SECRET, cli_env
from helpers.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.only_on("posix")]  # pseudo-terminals (pty) are POSIX-only

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "console"
CLI = [sys.executable, "-m", "linkpronto"]
COLS, ROWS = 100, 60
QR_BLOCKS = set("█▀▄")
READY_TITLE = "Ready — point your phone's camera"
LADDER = ("livekit", "public_probe", "public_rtc", "link_route")


# -- a terminal, just enough for rich -------------------------------------------------------------
_TOKEN = re.compile(
    r"\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b.|[\s\S]"
)


class Screen:
    """Replays terminal output: text, CR/LF, autowrap, cursor up/down/column, erase in line.

    That is what rich's ``Live`` uses to redraw its table in place; colours and other modes are
    dropped. ``text()`` is the screen (with scrollback) as plain text.
    """

    def __init__(self, width: int = COLS) -> None:
        self.width = width
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def feed(self, data: str) -> None:
        for m in _TOKEN.finditer(data):
            tok = m.group(0)
            if m.group(2) is not None:
                self._csi(m.group(1), m.group(2))
            elif tok.startswith("\x1b"):
                continue  # OSC (hyperlinks, title), charset selection, other escapes
            elif tok == "\r":
                self.col = 0
            elif tok == "\n":
                self.row += 1
            elif tok == "\b":
                self.col = max(0, self.col - 1)
            elif tok in ("\x07", "\x00"):
                continue
            else:
                if self.col >= self.width:  # autowrap
                    self.row, self.col = self.row + 1, 0
                line = self._line()
                line.extend(" " * (self.col + 1 - len(line)))
                line[self.col] = tok
                self.col += 1

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return  # cursor visibility and other private modes
        nums = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = nums[0] if nums else 0
        if final == "A":
            self.row = max(0, self.row - max(n, 1))
        elif final == "B":
            self.row += max(n, 1)
        elif final == "C":
            self.col += max(n, 1)
        elif final == "D":
            self.col = max(0, self.col - max(n, 1))
        elif final == "G":
            self.col = max(n, 1) - 1
        elif final == "K":
            line = self._line()
            if n == 2:
                line.clear()
            elif n == 1:
                line[: self.col] = [" "] * min(self.col, len(line))
            else:
                del line[self.col :]
        elif final == "J" and n in (0, 2):
            del self.lines[self.row + 1 :]
            del self._line()[self.col :]

    def text(self) -> str:
        return "\n".join("".join(line).rstrip() for line in self.lines).strip("\n") + "\n"


class PtyProcess:
    """A command on the slave side of a pty; ``read_until`` feeds what it draws into a Screen."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        import fcntl
        import struct
        import termios

        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.master = master
        self.screen = Screen()
        self.raw = ""
        self._pending = b""
        try:
            self.proc = subprocess.Popen(
                argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, start_new_session=True
            )
        finally:
            os.close(slave)

    def _pump(self, timeout: float) -> str:
        """Read what arrives within ``timeout``: ``"data"``, ``"idle"`` (nothing came) or ``"eof"``."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return "idle"
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed (the process exited)
            return "eof"
        if not chunk:
            return "eof"
        data = self._pending + chunk
        try:
            text = data.decode("utf-8")
            self._pending = b""
        except UnicodeDecodeError as exc:  # a multi-byte character split across reads
            text = data[: exc.start].decode("utf-8")
            self._pending = data[exc.start :]
        self.raw += text
        self.screen.feed(text)
        return "data"

    def read_until(self, done: Callable[[str], bool], timeout: float) -> str:
        """Read until ``done(screen)`` holds between two redraws (never in the middle of a frame)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._pump(0.1)
            if got == "idle" and done(self.screen.text()):
                return self.screen.text()
            if got == "eof":
                break
        raise AssertionError(f"not seen within {timeout} s; the terminal shows:\n{self.screen.text()}")

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit, reading everything it wrote."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._pump(0.05)
            if got == "eof" or (got == "idle" and self.proc.poll() is not None):
                break
        return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self.master)


def run_in_pty(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 30) -> tuple[int, str]:
    p = PtyProcess(argv, env, cwd)
    try:
        rc = p.wait(timeout)
        return rc, p.screen.text()
    finally:
        p.close()


# -- helpers ----------------------------------------------------------------------------------------
def env_for(tmp_path: Path, double: RunningDouble, public_port: int, admin_port: int) -> dict[str, str]:
    env = cli_env(
        tmp_path / "data", double.url, public_port, admin_port,
        COLUMNS=str(COLS), LINES=str(ROWS), TERM="xterm-256color",
    )
    env.pop("NO_COLOR", None)
    return env


def qr_rows(url: str) -> list[str]:
    """The rows segno draws for ``url`` in a terminal (what linkpronto's console prints)."""
    import io

    buf = io.StringIO()
    segno.make_qr(url, error="l").terminal(out=buf, compact=True, border=2)
    return [row.rstrip() for row in buf.getvalue().splitlines() if row.strip()]


def assert_qr_of(screen: str, url: str) -> None:
    """The QR of ``url`` is on the screen: each of its rows, in order, on consecutive lines."""
    rows = qr_rows(url)
    assert QR_BLOCKS & set("".join(rows))
    lines = screen.splitlines()
    for start, line in enumerate(lines):
        if rows[0] in line and all(
            start + i < len(lines) and row in lines[start + i] for i, row in enumerate(rows)
        ):
            return
    raise AssertionError(f"the QR code of {url} is not on the screen:\n{screen}")


def check_row(screen: str, name: str) -> str:
    """The last line of the status table for a ladder check."""
    rows = [ln for ln in screen.splitlines() if re.search(rf"[✓✗] {re.escape(name)}\b", ln)]
    assert rows, f"no row for {name!r}:\n{screen}"
    return rows[-1]


def session_members(sid: int) -> list[int]:
    out = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid:
                out.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- tests ------------------------------------------------------------------------------------------
def test_up_shows_status_table_admin_url_and_qr_then_stops_on_ctrl_c(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    public_port, admin_port = free_port(), free_port()
    public = f"http://127.0.0.1:{public_port}"
    env = env_for(tmp_path, livekit_double, public_port, admin_port)
    # A supervised app (a real child process), so that "Ctrl+C leaves nothing behind" means something.
    app_port = free_port()
    env["LINKPRONTO_APP_COMMAND"] = f"{sys.executable} -m http.server {app_port} --bind 127.0.0.1"
    env["LINKPRONTO_APP_PORT"] = str(app_port)
    up = PtyProcess([*CLI, "up"], env, tmp_path)
    try:

        def drawn(screen: str) -> bool:
            # The QR panel, and below it the live table once every check of the ladder passed.
            if READY_TITLE not in screen:
                return False
            after = screen[screen.index(READY_TITLE) :]
            return "╰" in after and all(re.search(rf"✓ {n}\s+ok", after) for n in LADDER)

        screen = up.read_until(drawn, timeout=30)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "up.txt").write_text(screen, encoding="utf-8")

        assert not re.search(r"\x1b|\[\d+m", screen)  # the snapshot is plain text
        # Where the dashboard is and where the admin token lives.
        assert f"Dashboard (this computer only): http://127.0.0.1:{admin_port}" in screen
        assert f"Admin token: {tmp_path / 'data' / 'admin-token'}" in screen
        assert f"Public listener: port {public_port}" in screen
        # The status table: state ready, the public address, every rung of the ladder passed.
        assert re.search(r"^State:\s+ready\s*$", screen, re.M), screen
        assert re.search(rf"^Public address:\s+{re.escape(public)}\s*$", screen, re.M), screen
        assert re.search(r"^Step\s+State\s+ms\s+Detail", screen, re.M), screen
        for name in LADDER:
            row = check_row(screen, name)
            assert re.match(rf"✓ {name}\s+ok\s+\d+\s", row), row
        assert re.search(r"^livekit\s+external\s", screen, re.M), screen
        assert re.search(rf"^tunnel\s+ready\s+static: {re.escape(public)}", screen, re.M), screen
        # Problems are wrapped, never cut at the terminal's width (their fix is the useful part).
        problems = " ".join(screen[screen.rindex("warning[MEDIA_SAME_NETWORK_ONLY]") :].split())  # ready: a warning
        assert (
            "fix: Phones outside this network will get no video. Use LiveKit Cloud (--livekit cloud), "
            "a VPS with --tunnel ssh and ssh_forward_media = true, or configure TURN (livekit.turn_url)."
            in problems
        ), screen
        assert all(len(line) <= COLS for line in screen.splitlines())
        # The ready panel: a QR code of the public URL (block characters), and the URL itself.
        panel = screen[screen.index(READY_TITLE) : screen.index("╰", screen.index(READY_TITLE))]
        assert QR_BLOCKS & set(panel)
        assert_qr_of(panel, public)
        assert re.search(rf"│ {re.escape(public)}\s+│", panel), panel
        # Nothing secret on the terminal.
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        assert token not in up.raw and TEST_SECRET not in up.raw

        app_row = re.search(r"^app\s+ready\s+pid (\d+)", screen, re.M)  # the state is not repeated as detail
        assert app_row, screen
        assert re.search(r"^✓ app\s+ok\s+\d+\s+HTTP 200", screen, re.M), screen

        # Ctrl+C: a clean stop, exit code 0, nothing left behind (the app child included).
        children = [c.pid for c in psutil.Process(up.proc.pid).children(recursive=True)]
        assert int(app_row.group(1)) in children
        members = session_members(up.proc.pid)
        assert up.proc.pid in members
        up.proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        rc = up.wait(timeout=10)
        assert rc == 0, up.screen.text()
        assert time.monotonic() - started < 5
        assert session_members(up.proc.pid) == []
        assert not [p for p in {*members, *children} if alive(p)]
    finally:
        up.close()


def test_link_create_prints_url_and_terminal_qr_and_status_prints_table(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    public_port, admin_port = free_port(), free_port()
    public = f"http://127.0.0.1:{public_port}"
    env = env_for(tmp_path, livekit_double, public_port, admin_port)
    log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([*CLI, "up"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        rc, screen = run_in_pty([*CLI, "status", "--wait-ready", "20"], env, tmp_path)
        assert rc == 0, screen
        assert re.search(r"^State:\s+ready\s*$", screen, re.M), screen
        assert re.search(rf"^Public address:\s+{re.escape(public)}\s*$", screen, re.M), screen
        assert re.search(rf"^Admin:\s+http://127\.0\.0\.1:{admin_port}\s*$", screen, re.M), screen
        for name in LADDER:
            assert re.match(rf"✓ {name}\s+ok\s+\d+\s", check_row(screen, name))

        rc, screen = run_in_pty([*CLI, "link", "create", "--professional", "p"], env, tmp_path)
        assert rc == 0, screen
        urls = re.findall(rf"{re.escape(public)}/c/[A-Za-z0-9_-]+", screen)
        assert len(urls) == 1, screen
        assert re.search(rf"^{re.escape(urls[0])}$", screen, re.M), screen  # on a line of its own
        assert_qr_of(screen, urls[0])  # the QR, in block characters, is of that very link
        assert re.search(r"^Expires at: \d{4}-\d\d-\d\dT", screen, re.M), screen
    finally:
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(timeout=15) == 0, (tmp_path / "up.log").read_text()
        finally:
            if up.poll() is None:
                up.kill()
                up.wait(timeout=10)
            log.close()
