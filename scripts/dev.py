#!/usr/bin/env python3
"""Set everything up, then run linkpronto or its tests — the README's two Quick-start commands.

    python3 scripts/dev.py up   [linkpronto up options...]
    python3 scripts/dev.py test [--fast] [pytest options...]
    python3 scripts/dev.py setup [--tests]

``test`` alone is the full run (ruff, mypy for linux and win32, every test; what ``.ci/run`` does).
``test --fast`` runs the fast tier only (``pytest -m "not slow"``: no process, browser or sshd).
With pytest arguments (``test -k join``, ``test tests/web/test_links_api.py``) only pytest runs;
ruff and mypy run first only in the full run or when ``CI=true``.

Windows (PowerShell): ``py scripts\\dev.py up`` / ``py scripts\\dev.py test``.

Set-up is idempotent and quick when nothing changed: a virtual environment in ``.venv`` with
linkpronto and its test tools, ``npm install`` for the pages' ``livekit-client`` (served by
linkpronto itself, never from a CDN), and — for the tests, on Debian/Ubuntu as root — Debian's
``chromium``, ``openssh-server``, ``caddy``, ``wrk``, ``postgresql`` and ``redis-server``. Uses only the standard library.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
IS_WINDOWS = sys.platform == "win32"
BIN = VENV / ("Scripts" if IS_WINDOWS else "bin")
PY = BIN / ("python.exe" if IS_WINDOWS else "python")
STAMP = VENV / ".linkpronto-setup"
TEST_DEBS = {
    "chromium": "/usr/bin/chromium",
    "openssh-server": "/usr/sbin/sshd",
    "caddy": "/usr/bin/caddy",
    "wrk": "/usr/bin/wrk",
    # A real PostgreSQL and Redis for the store and limiter tests (started by the tests themselves).
    "postgresql": "/usr/share/postgresql-common/pg_wrapper",
    "redis-server": "/usr/bin/redis-server",
    "tcpdump": "/usr/bin/tcpdump",  # the real-LiveKit media test proves no packet leaves the machine
}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: How long apt-get waits for another apt-get's dpkg lock before giving up (seconds).
APT_LOCK_WAIT_S = 300


def say(msg: str) -> None:
    print(f"[dev] {msg}", flush=True)


def run(argv: list[str], **kw: object) -> None:
    say(" ".join(argv))
    subprocess.run(argv, check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def _fingerprint(with_tests: bool) -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        p = ROOT / name
        if p.exists():
            h.update(p.read_bytes())
    h.update(b"tests" if with_tests else b"run")
    return h.hexdigest()


def setup_python(with_tests: bool) -> None:
    if not PY.exists():
        say("creating .venv")
        venv.EnvBuilder(with_pip=True).create(VENV)
    fp = _fingerprint(with_tests)
    if STAMP.exists() and STAMP.read_text() == fp:
        return
    run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    target = ".[test,media]" if with_tests else ".[media]"
    run([str(PY), "-m", "pip", "install", "-q", "-e", target])
    STAMP.write_text(fp)


def setup_assets() -> None:
    """livekit-client is vendored (committed) in static/vendor; npm is only needed to upgrade it."""
    vendor = ROOT / "src" / "linkpronto" / "web" / "static" / "vendor"
    if any(vendor.glob("livekit-client*.js")):
        return
    npm = shutil.which("npm")
    if npm is None:
        if IN_CI:
            raise SystemExit("the vendored livekit-client bundle is missing and npm is not installed")
        say("livekit-client bundle missing from static/vendor and npm not found: restore it with git checkout.")
        return
    if not (ROOT / "node_modules" / "livekit-client").exists():
        run([npm, "ci" if (ROOT / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"])
    run([str(PY), "-m", "linkpronto.web.assets"])


def setup_test_system() -> None:
    """Debian packages the tests drive for real (a real browser, a real sshd, caddy and wrk)."""
    missing = [pkg for pkg, path in TEST_DEBS.items() if not Path(path).exists()]
    if not missing:
        return
    apt = shutil.which("apt-get")
    if IS_WINDOWS or apt is None or (hasattr(os, "geteuid") and os.geteuid() != 0):
        msg = f"missing system packages for the tests: {', '.join(missing)} (Debian: apt-get install {' '.join(missing)})"
        if IN_CI:
            raise SystemExit(msg)
        say(msg + " — the tests that need them will be skipped")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Another apt-get (unattended-upgrades, a second terminal) may hold the dpkg lock: wait for it
    # (up to APT_LOCK_WAIT_S) instead of failing at once, and say so.
    lock = ["-o", f"DPkg::Lock::Timeout={APT_LOCK_WAIT_S}"]
    install = [apt, *lock, "install", "-y", "-qq", "--no-install-recommends", *missing]
    say(f"installing {', '.join(missing)} with apt-get (waits up to {APT_LOCK_WAIT_S} s if another apt holds the lock)")
    for argv in ([apt, *lock, "update", "-qq"], install):
        say(" ".join(argv))
        result = subprocess.run(argv, cwd=ROOT, env=env, check=False)
        if result.returncode != 0:
            hint = f"sudo apt-get install -y {' '.join(missing)}" if argv is install else "sudo apt-get update"
            raise SystemExit(
                f"[dev] apt-get failed (exit {result.returncode}) while installing the test system packages "
                f"({', '.join(missing)}). If another apt-get or the automatic updates are running, wait for "
                f"them to finish; then run:\n    {hint}\nand start scripts/dev.py again."
            )


LIVEKIT_VERSION = "v1.13.5"  # the real livekit-server the tests run (its go.mod has no replace directive)
LIVEKIT_GO_PACKAGE = "github.com/livekit/livekit-server/cmd/server"


def livekit_cache_dir() -> Path:
    root = os.environ.get("LINKPRONTO_TEST_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "linkpronto") / "livekit-server" / LIVEKIT_VERSION


LIVEKIT_INSTALL_TIMEOUT_S = 120  # the official download; without internet it fails in seconds anyway
# Where linkpronto itself would take livekit-server from (livekit.binary, PATH, its install folder).
_FIND_LINKPRONTO_LIVEKIT = (
    "from linkpronto.config import load_settings\n"
    "from linkpronto.livekit.local import find_livekit_binary\n"
    "s = load_settings()\n"
    "try:\n    print(find_livekit_binary(s, s.data_dir))\n"
    "except Exception:\n    pass\n"
)


def _livekit_version_of(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).strip()


def _cache_livekit(found: Path, why: str) -> bool:
    """Copy a livekit-server of the pinned version into the cache the tests read; False if another version."""
    version = _livekit_version_of(found)
    if LIVEKIT_VERSION.lstrip("v") not in version:
        say(f"{why}: {found} is {version or 'not runnable'}, not {LIVEKIT_VERSION}; not used for the tests")
        return False
    dest = livekit_cache_dir() / ("server.exe" if IS_WINDOWS else "server")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(found, dest)
    say(f"livekit-server {LIVEKIT_VERSION} for the tests: {found} ({why}) -> {dest}")
    return True


def _linkpronto_livekit() -> Path | None:
    """livekit-server where linkpronto finds it (livekit.binary, PATH, its install folder), if any."""
    try:
        out = subprocess.run([str(PY), "-c", _FIND_LINKPRONTO_LIVEKIT], capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = out.stdout.strip().splitlines()[-1:] if out.returncode == 0 else []
    return Path(line[0]) if line and Path(line[0]).is_file() else None


def _linkpronto_install_livekit() -> Path | None:
    """linkpronto's own installer (the official release download, checksum-verified), time-bounded."""
    exe = BIN / ("linkpronto.exe" if IS_WINDOWS else "linkpronto")
    argv = [str(exe), "install", "livekit", "--version", LIVEKIT_VERSION.lstrip("v")]
    say(" ".join(argv[1:]))
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=LIVEKIT_INSTALL_TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        say(f"linkpronto install livekit: no answer in {LIVEKIT_INSTALL_TIMEOUT_S} s")
        return None
    except OSError as exc:
        say(f"linkpronto install livekit: {exc}")
        return None
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
        say(f"linkpronto install livekit failed (exit {done.returncode}): {tail[0]}")
        return None
    return _linkpronto_livekit()


def _go_install_livekit() -> bool:
    go = shutil.which("go")
    if go is None:
        say("no Go toolchain to build livekit-server from its module")
        return False
    livekit_cache_dir().mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(livekit_cache_dir()), GOFLAGS="-mod=mod")
    try:
        run([go, "install", f"{LIVEKIT_GO_PACKAGE}@{LIVEKIT_VERSION}"], env=env)
    except subprocess.CalledProcessError as exc:
        say(f"go install of livekit-server {LIVEKIT_VERSION} failed (exit {exc.returncode})")
        return False
    return True


def setup_livekit() -> None:
    """A real livekit-server for the tests, first found wins:

    1. already there: ``$LINKPRONTO_TEST_LIVEKIT``, the cache (``~/.cache/linkpronto/livekit-server/
       v1.13.5/server``), ``livekit-server`` on PATH — or where linkpronto itself finds one
       (``livekit.binary``, PATH, its install folder), copied into the cache when it is v1.13.5;
    2. linkpronto's own installer: ``linkpronto install livekit --version 1.13.5`` (the official release
       download; time-bounded, so a machine without internet moves on quickly);
    3. ``go install github.com/livekit/livekit-server/cmd/server@v1.13.5`` with ``GOBIN`` in the cache.

    Under ``CI=true`` not getting it is a failure; elsewhere the real-LiveKit tests are skipped."""
    exe = "server.exe" if IS_WINDOWS else "server"
    explicit = os.environ.get("LINKPRONTO_TEST_LIVEKIT")
    if (explicit and Path(explicit).is_file()) or (livekit_cache_dir() / exe).is_file():
        return
    on_path = shutil.which("livekit-server")
    if on_path and LIVEKIT_VERSION.lstrip("v") in _livekit_version_of(Path(on_path)):
        return
    found = _linkpronto_livekit()
    if found is not None and _cache_livekit(found, "found by linkpronto"):
        return
    installed = _linkpronto_install_livekit()
    if installed is not None and _cache_livekit(installed, "linkpronto install livekit"):
        return
    if _go_install_livekit() and (livekit_cache_dir() / exe).is_file():
        return
    msg = (f"no livekit-server {LIVEKIT_VERSION} for the tests: linkpronto install livekit and go install "
           f"both failed. Install Go (https://go.dev/dl), or put livekit-server {LIVEKIT_VERSION} on PATH "
           f"(or set LINKPRONTO_TEST_LIVEKIT)")
    if IN_CI:
        raise SystemExit(msg)
    say(msg + " — the real-LiveKit tests will be skipped")


def setup(with_tests: bool) -> None:
    setup_python(with_tests)
    setup_assets()
    if with_tests:
        setup_test_system()
        setup_livekit()


def cmd_up(args: list[str]) -> int:
    setup(with_tests=False)
    exe = BIN / ("linkpronto.exe" if IS_WINDOWS else "linkpronto")
    proc = subprocess.Popen([str(exe), "up", *args], cwd=Path.cwd())
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # Ctrl+C reaches linkpronto too: let it stop cleanly, no traceback here
            continue


def cmd_test(args: list[str]) -> int:
    fast = "--fast" in args
    args = [a for a in args if a != "--fast"]
    setup(with_tests=True)
    if fast:
        args = ["-m", "not slow", *args]
    if (fast or args) and not IN_CI:
        return subprocess.call([str(PY), "-m", "pytest", "-q", *args], cwd=ROOT)
    steps = [
        [str(PY), "-m", "ruff", "check", "src", "tests", "bench", "scripts"],
        [str(PY), "-m", "mypy", "--platform", "linux"],
        [str(PY), "-m", "mypy", "--platform", "win32"],
    ]
    for step in steps:
        say(" ".join(step[2:]))
        if subprocess.call(step, cwd=ROOT) != 0:
            return 1
    return subprocess.call([str(PY), "-m", "pytest", "-q", *args], cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "test", "setup"):
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "setup":
        setup(with_tests="--tests" in rest)
        return 0
    return cmd_up(rest) if cmd == "up" else cmd_test(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
