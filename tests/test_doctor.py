"""``linkpronto doctor --json`` against a Next.js project like the user's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs `python -m linkpronto doctor` as a child process

FIXTURE = Path(__file__).parent / "fixtures" / "nextproj_no_origins"


def run_doctor(tmp_path: Path, project: Path, **env: str) -> tuple[int, dict]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LINKPRONTO_", "LIVEKIT_", "NGROK_"))}
    e.update(LINKPRONTO_SERVER_DATA_DIR=str(tmp_path / "data"), LINKPRONTO_LANG="en", **env)
    res = subprocess.run(
        [sys.executable, "-m", "linkpronto", "doctor", "--json", "--project", str(project)],
        env=e, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    return res.returncode, json.loads(res.stdout)


def test_doctor_flags_missing_allowed_dev_origins_and_build_time_urls(tmp_path: Path) -> None:
    project = tmp_path / "app"
    shutil.copytree(FIXTURE, project)
    rc, report = run_doctor(
        tmp_path, project, LINKPRONTO_SERVER_ADMIN_PORT="17991", LINKPRONTO_SERVER_PUBLIC_PORT="17992",
        LINKPRONTO_LIVEKIT_PORT="17993", LINKPRONTO_LIVEKIT_TCP_PORT="17994", LINKPRONTO_LIVEKIT_UDP_PORT="17995",
    )
    by = {c["name"]: c for c in report["checks"]}
    origins = by["nextjs.allowedDevOrigins"]
    assert origins["level"] == "warn" and "allowedDevOrigins" in origins["message"]
    assert "--app" in origins["fix"]
    site = by["nextjs.NEXT_PUBLIC_SITE_URL"]
    assert "pages/consulta.js" in site["message"] and "/_linkpronto/api/runtime-config" in site["fix"]
    assert "nextjs.NEXT_PUBLIC_LIVEKIT_URL" in by
    assert all(set(c) >= {"name", "level", "ok", "message", "fix"} for c in report["checks"])
    assert rc == (0 if report["ok"] else 1)


def test_doctor_reports_a_taken_port_and_insecure_keys(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        rc, report = run_doctor(
            tmp_path, tmp_path,
            LINKPRONTO_SERVER_ADMIN_PORT=str(port), LINKPRONTO_LIVEKIT_MODE="external",
            LINKPRONTO_TUNNEL_PROVIDER="static", LINKPRONTO_TUNNEL_STATIC_URL="https://x.example",
            LIVEKIT_URL="ws://127.0.0.1:7880", LIVEKIT_API_KEY="devkey", LIVEKIT_API_SECRET="secret",
        )
    finally:
        holder.close()
    by = {c["name"]: c for c in report["checks"]}
    assert rc == 1 and report["ok"] is False
    assert by["server.admin_port"]["level"] == "error" and str(port) in by["server.admin_port"]["message"]
    assert by["livekit.keys"]["level"] == "error" and by["livekit.keys"]["fix"]


def _next_project(root: Path, version: str | None) -> Path:
    """A Pages Router project like the seed's: client pages, server-only API routes, a token route."""
    (root / "pages" / "api" / "livekit").mkdir(parents=True)
    (root / "components").mkdir()
    (root / "next.config.js").write_text("module.exports = { reactStrictMode: true };\n")
    (root / "package.json").write_text('{"dependencies": {"next": "^16.0.0"}}')
    if version:
        (root / "node_modules" / "next").mkdir(parents=True)
        (root / "node_modules" / "next" / "package.json").write_text(json.dumps({"name": "next", "version": version}))
    (root / "pages" / "api" / "generate-consultation-token.js").write_text(
        "const baseUrl = process.env.NEXT_PUBLIC_SITE_URL;\nexport default function h(req, res) {}\n")
    (root / "pages" / "api" / "livekit" / "token.js").write_text(
        "import { AccessToken } from 'livekit-server-sdk';\n"
        "const at = new AccessToken(process.env.LIVEKIT_API_KEY, process.env.LIVEKIT_API_SECRET);\n")
    (root / "components" / "Room.jsx").write_text("const url = process.env.NEXT_PUBLIC_LIVEKIT_URL;\n")
    return root


def test_doctor_is_accurate_about_the_installed_next_and_server_only_files(tmp_path: Path) -> None:
    ports = dict(LINKPRONTO_SERVER_ADMIN_PORT="17981", LINKPRONTO_SERVER_PUBLIC_PORT="17982",
                 LINKPRONTO_LIVEKIT_PORT="17983", LINKPRONTO_LIVEKIT_TCP_PORT="17984",
                 LINKPRONTO_LIVEKIT_UDP_PORT="17985")
    old = _next_project(tmp_path / "old", "16.0.7")
    _, report = run_doctor(tmp_path, old, **ports)
    by = {c["name"]: c for c in report["checks"]}
    origins = by["nextjs.allowedDevOrigins"]
    assert origins["level"] == "info" and "16.0.7 only warns" in origins["message"], origins
    # Server-only files are read at run time: not "baked in".
    assert "nextjs.NEXT_PUBLIC_SITE_URL" not in by
    server = by["nextjs.NEXT_PUBLIC_SITE_URL.server"]
    assert server["level"] == "info" and "pages/api/generate-consultation-token.js" in server["message"]
    assert "baked in" not in server["message"] or "not baked in" in server["message"]
    client = by["nextjs.NEXT_PUBLIC_LIVEKIT_URL"]
    assert client["level"] == "warn" and "components/Room.jsx" in client["message"]
    # The token route is named and told it will get the keys.
    tokens = by["nextjs.livekit_tokens"]
    assert "pages/api/livekit/token.js" in tokens["message"] and "key pair LiveKit runs with" in tokens["message"]

    new = _next_project(tmp_path / "new", "16.4.6")
    _, report = run_doctor(tmp_path, new, **ports)
    origins = {c["name"]: c for c in report["checks"]}["nextjs.allowedDevOrigins"]
    assert origins["level"] == "warn" and "16.4.6 blocks /_next/*" in origins["message"] and "--app" in origins["fix"]
    # Run under `up --app`, the gateway handles it: information, not a warning.
    _, report = run_doctor(tmp_path, new, LINKPRONTO_APP_PORT="3001", **ports)
    origins = {c["name"]: c for c in report["checks"]}["nextjs.allowedDevOrigins"]
    assert origins["level"] == "info" and "gateway" in origins["message"]


def test_doctor_never_says_all_good_below_a_warning(tmp_path: Path) -> None:
    from linkpronto.console import doctor_verdict

    warn = {"level": "warn", "name": "x", "message": "m", "fix": None, "ok": False}
    ok = {"level": "ok", "name": "y", "message": "m", "fix": None, "ok": True}
    assert doctor_verdict({"ok": True, "checks": [ok]})[0] in ("All good.", "Tudo certo.")
    text, _ = doctor_verdict({"ok": True, "checks": [ok, warn]})
    assert "All good" not in text and "Tudo certo" not in text and "1" in text
    project = _next_project(tmp_path / "p", "16.4.6")
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LINKPRONTO_", "LIVEKIT_", "NGROK_"))}
    e.update(LINKPRONTO_SERVER_DATA_DIR=str(tmp_path / "data"), LINKPRONTO_LANG="en",
             LINKPRONTO_SERVER_ADMIN_PORT="17971", LINKPRONTO_SERVER_PUBLIC_PORT="17972")
    res = subprocess.run([sys.executable, "-m", "linkpronto", "doctor", "--project", str(project)],
                         env=e, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    last = res.stdout.strip().splitlines()[-1]
    assert "All good." not in res.stdout and ("warning" in last or "problems" in last), res.stdout


def test_doctor_says_where_forwarded_video_goes(tmp_path: Path) -> None:
    """``ssh_forward_media``: the address LiveKit will advertise (the ssh server's, as the real ``ssh -G``
    names it), or a warning with the fix when there is none a phone could reach."""
    ports = dict(LINKPRONTO_SERVER_ADMIN_PORT="17981", LINKPRONTO_SERVER_PUBLIC_PORT="17982",
                 LINKPRONTO_LIVEKIT_PORT="17983", LINKPRONTO_LIVEKIT_TCP_PORT="17984",
                 LINKPRONTO_LIVEKIT_UDP_PORT="17985", LINKPRONTO_TUNNEL_PROVIDER="ssh",
                 LINKPRONTO_TUNNEL_SSH_FORWARD_MEDIA="true")
    _, report = run_doctor(tmp_path, tmp_path, LINKPRONTO_TUNNEL_SSH_TARGET="deploy@203.0.113.7", **ports)
    found = {c["name"]: c for c in report["checks"]}["media.node_ip"]
    assert found["level"] == "ok" and "203.0.113.7" in found["message"] and "17984" in found["message"], found
    _, report = run_doctor(tmp_path, tmp_path, LINKPRONTO_TUNNEL_SSH_TARGET="me@127.0.0.1", **ports)
    found = {c["name"]: c for c in report["checks"]}["media.node_ip"]
    assert found["level"] == "warn" and "livekit.node_ip" in found["fix"], found
