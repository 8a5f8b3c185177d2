"""``linkpronto doctor --json`` against a Next.js project like the user's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

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
