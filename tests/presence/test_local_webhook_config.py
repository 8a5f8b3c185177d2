"""Local mode writes LiveKit's webhook section itself (livekit-server YAML ``webhook``)."""

from __future__ import annotations

from pathlib import Path

from linkpronto.config import defaults
from linkpronto.events.webhook import ADMIN_PATH
from linkpronto.livekit.local import render_config


def test_local_config_posts_webhooks_to_the_admin_listener(tmp_path: Path) -> None:
    settings = defaults(tmp_path, server={"admin_port": 7999})
    conf = render_config(settings, "LPKEY", "s" * 40, "127.0.0.1")
    assert conf["webhook"] == {"api_key": "LPKEY", "urls": [f"http://127.0.0.1:7999{ADMIN_PATH}"]}
    assert conf["keys"] == {"LPKEY": "s" * 40}  # the signing key is one LiveKit knows
