"""The real livekit-server v1.13.5 accepts every config linkpronto hands it (it refuses unknown
fields at start): ``deploy/livekit.yaml`` as it stands, and the config ``render_config`` writes for
local mode in every stack mode and with every tunnel provider. A typo in ``livekit/local.py`` fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.livekit_real import check_config
from fixtures.netns import Topology
from linkpronto.config import load_settings
from linkpronto.livekit.local import render_config
from linkpronto.tunnels import PROVIDERS

pytestmark = pytest.mark.real_livekit
ROOT = Path(__file__).resolve().parents[2]


def test_deploy_livekit_yaml_is_accepted_as_it_stands(real_livekit_binary: Path, topology: Topology) -> None:
    """Every field of the compose example parses. Its ``use_external_ip: true`` makes the server ask
    Google's STUN for the public address, so the check runs in a namespace with no way out and that one
    value is set false (the field set — what strict parsing checks — is the file's own)."""
    import yaml

    config = yaml.safe_load((ROOT / "deploy" / "livekit.yaml").read_text(encoding="utf-8"))
    assert config["rtc"]["use_external_ip"] is True
    config["rtc"]["use_external_ip"] = False
    host = topology.host("cfg")  # loopback only: nothing can leave
    proc = check_config(config, host=host, env={"LIVEKIT_KEYS": "APIdeploy: " + "s" * 40})  # as compose.yaml does
    assert proc.returncode == 0, proc.stdout[-2000:]
    typo = {**config, "rtc": {**config["rtc"], "udp_prot": 7882}}
    assert check_config(typo, host=host, env={"LIVEKIT_KEYS": "APIdeploy: " + "s" * 40}).returncode != 0


@pytest.mark.parametrize("mode", ["always-on", "on-demand"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_rendered_local_config_is_accepted(real_livekit_binary: Path, provider: str, mode: str) -> None:
    settings = load_settings(overrides={"tunnel": {"provider": provider}, "stack": {"mode": mode},
                                        "livekit": {"stun_servers": "127.0.0.1:3478"}})
    config = render_config(settings, "APIlocal", "s" * 40, "127.0.0.1")
    config["bind_addresses"] = ["127.0.0.1"]  # LAN providers bind 0.0.0.0: the check never leaves loopback
    proc = check_config(config)
    assert proc.returncode == 0, proc.stdout[-2000:]
