"""Local mode with ``server.admin_bind`` on one address (the clinic's laptop: its LAN address, so the
test process reaches the admin API): livekit-server's webhooks must go to that address — 127.0.0.1
reaches nothing there and presence would never hear a join."""

from __future__ import annotations

from pathlib import Path

from linkpronto.config import defaults
from linkpronto.events.webhook import ADMIN_PATH
from linkpronto.livekit.local import render_config


def test_webhooks_follow_a_specific_admin_bind(tmp_path: Path) -> None:
    settings = defaults(tmp_path, server={"admin_port": 7999, "admin_bind": "198.18.1.2"})
    conf = render_config(settings, "LPKEY", "s" * 40, "198.18.1.2")
    assert conf["webhook"]["urls"] == [f"http://198.18.1.2:7999{ADMIN_PATH}"]
    for wildcard in ("0.0.0.0", "127.0.0.1"):
        settings = defaults(tmp_path, server={"admin_port": 7999, "admin_bind": wildcard})
        assert render_config(settings, "K", "s" * 40, "x")["webhook"]["urls"] == [f"http://127.0.0.1:7999{ADMIN_PATH}"]
