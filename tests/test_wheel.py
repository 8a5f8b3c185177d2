"""A wheel built from a clean clone works without Node (issue 9, point 9).

The repository is cloned (committed files only), a wheel is built from the clone, installed into a fresh
virtual environment, and ``linkpronto up`` is run from that environment with a PATH on which there is
no ``npm`` (nor ``node``): the patient page's livekit-client answers 200 through the public listener and
the stack becomes ``ready`` (its ``link_route`` rung checks every file the patient page loads).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from doubles.livekit_server import RunningDouble
from helpers.lp import cli_env
from helpers.net import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, f"{argv}: {res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res  # type: ignore[no-any-return]


def test_wheel_from_a_clean_clone_serves_livekit_client_without_npm(
    tmp_path: Path, livekit_double: RunningDouble
) -> None:
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(clone)])
    assert not (clone / "node_modules").exists()
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(clone)])
    wheels = list(dist.glob("linkpronto-*.whl"))
    assert len(wheels) == 1, wheels
    fresh = tmp_path / "fresh"
    run([sys.executable, "-m", "venv", str(fresh)])
    bindir = fresh / ("Scripts" if sys.platform == "win32" else "bin")
    py = bindir / ("python.exe" if sys.platform == "win32" else "python")
    run([str(py), "-m", "pip", "install", "--quiet", str(wheels[0])])

    # No npm, no node: only the fresh environment's own programs.
    path = str(bindir)
    assert shutil.which("npm", path=path) is None and shutil.which("node", path=path) is None
    public_port, admin_port = free_port(), free_port()
    env = cli_env(tmp_path / "data", livekit_double.url, public_port, admin_port)
    env["PATH"] = path
    env.pop("PYTHONPATH", None)
    where = run([str(py), "-c", "import linkpronto; print(linkpronto.__file__)"], env=env, cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(fresh), where.stdout  # the wheel, not the checkout
    up = subprocess.Popen([str(py), "-m", "linkpronto", "up"], env=env, cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = run([str(py), "-m", "linkpronto", "status", "--json", "--wait-ready", "60"], env=env, cwd=tmp_path)
        doc = json.loads(status.stdout)
        route = next(c for c in doc["verification"]["checks"] if c["name"] == "link_route")
        assert doc["state"] == "ready" and route["ok"] is True, route
        url = f"http://127.0.0.1:{public_port}/_linkpronto/static/vendor/livekit-client.umd.js"
        with urllib.request.urlopen(url, timeout=10) as res:
            body = res.read()
            assert res.status == 200 and b"LivekitClient" in body[:2000] and len(body) > 100_000
    finally:
        up.terminate()
        try:
            up.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            up.kill()
            up.communicate()
    assert os.environ.get("PATH")  # the test's own environment is untouched
