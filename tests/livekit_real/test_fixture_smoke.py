"""The real-LiveKit tier's own footing: the real livekit-server runs inside a namespace of ours,
answers through it, refuses a config with an unknown field, and leaves no namespace behind."""

from __future__ import annotations

import httpx
import pytest

from fixtures.livekit_real import RealLivekit, base_config, check_config
from fixtures.netns import leftover_namespaces

pytestmark = pytest.mark.real_livekit


def test_real_server_answers_inside_its_namespace(real_livekit: RealLivekit) -> None:
    assert real_livekit.ip.startswith("198.18.")
    assert httpx.get(f"{real_livekit.url}/", timeout=5).text.strip() == "OK"
    assert "1.13.5" in real_livekit.log_tail(200)


def test_real_server_refuses_unknown_config_fields(real_livekit_binary: object) -> None:
    good = base_config("127.0.0.1", 1, 2, 3, {"k": "s" * 40})
    assert check_config(good).returncode == 0
    bad = check_config({**good, "rtc": {**good["rtc"], "node_ipp": "127.0.0.1"}})
    assert bad.returncode != 0
    assert "node_ipp" in bad.stdout


def test_a_topology_leaves_no_namespace_or_process_behind(real_livekit_binary: object) -> None:
    from fixtures.netns import Topology

    with Topology("smk") as topo:
        lan = topo.network("lan", "198.18.21.0/24")
        host = topo.host("lk")
        topo.attach(host, lan, "198.18.21.2", default=True)
        topo.link_root(lan, "198.18.21.254")
        lk = RealLivekit({"k": "s" * 40}, host=host, ip="198.18.21.2").start()
        pid = lk.pid
        names = [h.ns for h in topo.hosts.values()] + [topo.hub]
    lk.stop()
    assert not set(names) & set(leftover_namespaces())
    import psutil

    assert pid is not None and not psutil.pid_exists(pid)


def test_stun_servers_setting_reaches_the_rendered_config_and_the_real_server_accepts_it(
        real_livekit_binary: object) -> None:
    from helpers.lp import settings_for  # noqa: F401 - the settings the other tests use
    from linkpronto.config import load_settings
    from linkpronto.livekit.local import render_config

    settings = load_settings(overrides={"livekit": {"stun_servers": "198.18.20.2:3478, 198.18.20.3:3478"}})
    config = render_config(settings, "APIkey", "s" * 40, "198.18.20.2")
    assert config["rtc"]["stun_servers"] == ["198.18.20.2:3478", "198.18.20.3:3478"]
    assert check_config(config).returncode == 0
    default = render_config(load_settings(), "APIkey", "s" * 40, "198.18.20.2")
    assert "stun_servers" not in default["rtc"]
