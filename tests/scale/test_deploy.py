"""deploy/: the files are coherent with the code (no container engine here to run them).

The compose file is parsed; the Dockerfile's health check, user and command are checked; the
Caddyfile is adapted by the real ``caddy`` binary (a process: slow).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from fixtures.cluster import CADDY, caddy_available
from helpers.tiers import require
from linkpronto import paths

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_wires_caddy_two_instances_postgres_redis_livekit() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    services = doc["services"]
    assert {"caddy", "linkpronto-1", "linkpronto-2", "postgres", "redis", "livekit"} <= set(services)
    for name in ("linkpronto-1", "linkpronto-2"):
        svc = services[name]
        env = svc["environment"]
        assert env["LINKPRONTO_SERVER_DATABASE_URL"].startswith("postgresql://")
        assert env["LINKPRONTO_SERVER_RATE_LIMIT_STORAGE"].startswith("redis://redis:")
        assert env["LINKPRONTO_LIVEKIT_MODE"] == "external"
        assert env["LINKPRONTO_TUNNEL_STATIC_URL"].startswith("https://")
        assert "ports" not in svc  # only Caddy is published
    assert services["caddy"]["ports"][:2] == ["80:80", "443:443"]


def test_dockerfile_is_non_root_with_a_health_check_on_the_public_health_route() -> None:
    text = (DEPLOY / "Dockerfile").read_text("utf-8")
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER (?!root)\w+", final, re.M)
    assert "slim" in final.splitlines()[1]
    health = next(line for line in final.splitlines() if "CMD" in line and "urlopen" in line)
    assert paths.HEALTHZ in health
    assert '"serve"' in final and "--admin-bind" in final


@pytest.mark.slow
def test_caddyfile_adapts(tmp_path: Path) -> None:
    require(caddy_available(), "caddy (Debian: caddy)")
    env = dict(os.environ, LINKPRONTO_DOMAIN="consultas.example.com", ACME_EMAIL="ti@example.com",
               XDG_DATA_HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path), HOME=str(tmp_path))
    res = subprocess.run(
        [CADDY, "adapt", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "linkpronto-1:7801" in res.stdout and "linkpronto-2:7801" in res.stdout
    assert "consultas.example.com" in res.stdout and paths.HEALTHZ in res.stdout
