"""``static`` and ``lan``: no process, no network; what they return and what they say about HTTPS."""

from __future__ import annotations

import ipaddress

import pytest

from linkpronto.errors import ConfigInvalid
from linkpronto.schema import PartState
from linkpronto.tunnels.lan import LanTunnel, lan_address
from linkpronto.tunnels.static import StaticTunnel


async def test_static_returns_the_configured_url() -> None:
    tunnel = StaticTunnel(7801, "https://consultas.example.com/")
    assert await tunnel.open() == "https://consultas.example.com"
    assert tunnel.https is True
    status = tunnel.describe()
    assert status.state is PartState.READY and status.provider == "static"
    assert status.tradeoff is not None and status.tradeoff.en
    await tunnel.close()
    assert tunnel.describe().state is PartState.STOPPED


async def test_static_http_url_is_not_https() -> None:
    tunnel = StaticTunnel(7801, "http://10.0.0.5:7801")
    await tunnel.open()
    assert tunnel.https is False


async def test_static_without_url_is_a_config_error() -> None:
    tunnel = StaticTunnel(7801, "")
    with pytest.raises(ConfigInvalid):
        await tunnel.open()
    status = tunnel.describe()
    assert status.state is PartState.FAILED
    assert status.last_error is not None and status.last_error.code == "CONFIG_INVALID"
    assert status.to_json()["last_error"]["fix"]


async def test_lan_is_plain_http_on_this_machines_address() -> None:
    tunnel = LanTunnel(7801)
    url = await tunnel.open()
    host = url.removeprefix("http://").rsplit(":", 1)[0]
    ipaddress.ip_address(host)  # an IP address, not a name
    assert url.endswith(":7801") and host == lan_address()
    assert tunnel.https is False
    assert "HTTP" in LanTunnel.tradeoff.en


async def test_lan_host_override() -> None:
    tunnel = LanTunnel(7801, host="192.168.0.10")
    assert await tunnel.open() == "http://192.168.0.10:7801"
