"""The orchestrator under attack: run as a child process (so its RSS and descriptors are its own),
or in-process through :func:`helpers.lp.run_lp` when only behaviour matters."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from helpers.lp import cli_env
from helpers.net import free_port
from helpers.tiers import require  # noqa: F401 - the suite's modules import it from here
from linkpronto import paths


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    admin_url: str
    public_port: int
    token: str
    log_path: Path

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def admin(self, timeout: float = 5.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.admin_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=timeout
        )

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")


def nofile(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return preexec


@contextlib.contextmanager
def orchestrator_child(
    data_dir: Path, livekit_url: str, *, preexec: Callable[[], None] | None = None, **env_extra: str
) -> Iterator[Child]:
    public_port, admin_port = free_port(), free_port()
    env = cli_env(data_dir, livekit_url, public_port, admin_port, PYTHONUNBUFFERED="1", **env_extra)
    log_path = data_dir.parent / f"orchestrator-{admin_port}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "linkpronto", "up"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec,
        )
    admin_url = f"http://127.0.0.1:{admin_port}"
    try:
        deadline = time.monotonic() + 30
        token = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError("orchestrator exited:\n" + log_path.read_text("utf-8", errors="replace"))
            token_file = data_dir / "admin-token"
            if token_file.exists():
                token = token_file.read_text("ascii").strip()
                with contextlib.suppress(httpx.HTTPError):
                    r = httpx.get(admin_url + "/api/status", headers={"Authorization": f"Bearer {token}"}, timeout=2)
                    if r.status_code == 200:
                        break
            time.sleep(0.1)
        else:
            raise AssertionError("orchestrator did not answer:\n" + log_path.read_text("utf-8", errors="replace"))
        yield Child(proc, admin_url, public_port, token, log_path)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_ready(child: Child, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with child.admin() as admin:
        while time.monotonic() < deadline:
            if admin.get("/api/status").json()["state"] == "ready":
                return
            time.sleep(0.1)
    raise AssertionError("not ready:\n" + child.log()[-3000:])


# The public routes this suite attacks.
JOIN = paths.JOIN
DEVICE_CHECK = paths.DEVICE_CHECK


def page_path(token: str) -> str:
    return paths.PATIENT_PAGE.replace("{token}", token)
