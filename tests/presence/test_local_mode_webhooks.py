"""Local mode end to end: linkpronto writes LiveKit's config with the webhook section, and LiveKit (the
double, started as ``livekit-server --config``) posts to the admin listener: presence follows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from doubles.livekit_server import RunningDouble
from helpers.lp import run_lp, settings_for
from helpers.net import free_port
from linkpronto.events.webhook import ADMIN_PATH
from presence.lpkit import patient_joins, professional_joins, ready_link, wait_presence

# The stand-in for livekit-server is a shell script: POSIX only (deselected elsewhere, never skipped).
pytestmark = [pytest.mark.slow, pytest.mark.only_on("posix")]
DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "livekit_server.py"


async def test_local_livekit_is_configured_to_post_webhooks_to_linkpronto(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "livekit-server"
    binary.parent.mkdir(parents=True)
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} -u {DOUBLE} \"$@\"\n")
    binary.chmod(0o755)
    lk_port = free_port()
    settings = settings_for(tmp_path / "d", livekit_url="", livekit={
        "mode": "local", "binary": str(binary), "port": lk_port, "tcp_port": free_port(),
        "udp_port": free_port(), "url": "", "api_key": "", "api_secret": "",
    })
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        conf = yaml.safe_load((settings.data_dir / "livekit.yaml").read_text())
        assert conf["webhook"]["urls"] == [f"{lp.running.admin_url}{ADMIN_PATH}"]
        assert conf["webhook"]["api_key"] == lp.secrets.livekit_api_key
        link, token = await ready_link(lp)
        livekit = RunningDouble(lk_port, None, None)  # type: ignore[arg-type]  # only its URLs are used
        patient = await patient_joins(lp, livekit, token, "Maria")
        doc = await wait_presence(lp, link["id"], "waiting")
        assert doc["waiting_name"] == "Maria"
        host = await professional_joins(lp, livekit, link["id"])
        await wait_presence(lp, link["id"], "in_call")
        await host.leave()
        await patient.leave()
