"""``ngrok-agent`` against the agent API double (tests/doubles/ngrok_agent_api.py)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from doubles import ngrok_agent_api
from doubles.ngrok_agent_api import AgentApi
from fixtures.sshd import free_port
from linkpronto.errors import TunnelAuth, TunnelLimit, TunnelUnreachable
from linkpronto.schema import PartState
from linkpronto.tunnels.base import TunnelEvent, TunnelEventKind
from linkpronto.tunnels.ngrok_agent import AgentEndpoint, NgrokAgentTunnel, parse_endpoints, pick_endpoint

AGENT = (sys.executable, str(Path(ngrok_agent_api.__file__)))


@pytest.fixture
def api() -> Iterator[AgentApi]:
    server = AgentApi().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def legacy_api() -> Iterator[AgentApi]:
    server = AgentApi(legacy=True).start()
    try:
        yield server
    finally:
        server.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_adopts_the_running_agents_endpoint_for_our_port(api: AgentApi) -> None:
    api.add("https://other.ngrok-free.app", "http://localhost:3000", name="app")
    api.add("https://ours.ngrok-free.app", "http://localhost:7801", name="ours")
    tunnel = NgrokAgentTunnel(7801, api_url=api.url, start_agent=False)
    assert await tunnel.open() == "https://ours.ngrok-free.app"
    assert tunnel.adopted is True and tunnel.https is True
    assert "/api/endpoints" in api.requests
    await tunnel.close()
    assert api.endpoints  # an adopted agent is not ours to stop


async def test_falls_back_to_api_tunnels_on_older_agents(legacy_api: AgentApi) -> None:
    legacy_api.add("https://legacy.ngrok.io", "http://localhost:7801")
    tunnel = NgrokAgentTunnel(7801, api_url=legacy_api.url, start_agent=False)
    assert await tunnel.open() == "https://legacy.ngrok.io"
    assert legacy_api.requests[:2] == ["/api/endpoints", "/api/tunnels"]
    await tunnel.close()


async def test_no_endpoint_for_our_port_and_no_binary_is_unreachable(api: AgentApi) -> None:
    api.add("https://other.ngrok-free.app", "http://localhost:3000")
    tunnel = NgrokAgentTunnel(7801, api_url=api.url, start_agent=False)
    with pytest.raises(TunnelUnreachable) as info:
        await tunnel.open()
    assert "ngrok http 7801" in (info.value.fix("en") or "")
    assert tunnel.describe().state is PartState.UNHEALTHY


async def test_url_change_and_agent_going_away(api: AgentApi) -> None:
    events: list[TunnelEvent] = []
    api.add("https://first.ngrok-free.app", "http://localhost:7801", name="ours")
    tunnel = NgrokAgentTunnel(7801, events.append, api_url=api.url, start_agent=False, poll_interval_s=0.05)
    await tunnel.open()
    try:
        api.set_url("ours", "https://second.ngrok-free.app")
        await wait_for(lambda: tunnel.public_url == "https://second.ngrok-free.app", 3, "url change")
        assert events[-1] == TunnelEvent(TunnelEventKind.URL_CHANGED, url="https://second.ngrok-free.app",
                                         old_url="https://first.ngrok-free.app")
        api.clear()
        await wait_for(lambda: tunnel.describe().state is PartState.UNHEALTHY, 3, "disconnected")
        api.add("https://second.ngrok-free.app", "http://localhost:7801", name="ours")
        await wait_for(lambda: tunnel.describe().state is PartState.READY, 3, "reconnected")
        assert [e.kind for e in events] == [TunnelEventKind.URL_CHANGED, TunnelEventKind.DISCONNECTED,
                                            TunnelEventKind.RECONNECTED]
    finally:
        await tunnel.close()


@pytest.mark.slow
async def test_starts_ngrok_when_no_agent_runs(no_leftovers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NGROK_URL", "https://started.ngrok-free.app")
    monkeypatch.setenv("FAKE_NGROK_REQUIRE_TOKEN", "1")
    tunnel = NgrokAgentTunnel(7801, api_url=f"http://127.0.0.1:{free_port()}", command=AGENT,
                              authtoken="2abcSECRET")
    try:
        assert await tunnel.open() == "https://started.ngrok-free.app"
        assert tunnel.adopted is False and tunnel._proc is not None
        argv = tunnel._proc.spec.argv
        assert "--inspect=false" in argv and "2abcSECRET" not in " ".join(argv)
    finally:
        await tunnel.close()


@pytest.mark.slow
async def test_started_agent_errors_map_to_codes(no_leftovers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_NGROK_FAIL", "108")
    tunnel = NgrokAgentTunnel(7801, api_url=f"http://127.0.0.1:{free_port()}", command=AGENT, authtoken="t")
    started = time.monotonic()
    with pytest.raises(TunnelLimit):
        await tunnel.open()
    assert time.monotonic() - started < 5
    monkeypatch.delenv("FAKE_NGROK_FAIL")
    monkeypatch.setenv("FAKE_NGROK_REQUIRE_TOKEN", "1")
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    without_token = NgrokAgentTunnel(7801, api_url=f"http://127.0.0.1:{free_port()}", command=AGENT)
    with pytest.raises(TunnelAuth) as info:
        await without_token.open()
    assert "NGROK_AUTHTOKEN" in (info.value.fix("en") or "")


def test_endpoint_shapes() -> None:
    endpoints = parse_endpoints({"endpoints": [
        {"url": "https://a.ngrok.app", "upstream": {"url": "http://localhost:7801", "protocol": "http1"}},
        {"url": "tcp://1.tcp.ngrok.io:1234", "upstream": {"url": "tcp://localhost:7801"}},
    ]})  # fmt: skip
    assert endpoints[0] == AgentEndpoint("https://a.ngrok.app", "http://localhost:7801")
    assert pick_endpoint(endpoints, 7801) == endpoints[0]
    tunnels = parse_endpoints({"tunnels": [
        {"public_url": "http://b.ngrok.io", "config": {"addr": "localhost:7801"}},
        {"public_url": "https://b.ngrok.io", "config": {"addr": "http://127.0.0.1:7801"}},
        {"public_url": "https://c.ngrok.io", "config": {"addr": "http://192.168.0.9:7801"}},
    ]})  # fmt: skip
    picked = pick_endpoint(tunnels, 7801)
    assert picked is not None and picked.url == "https://b.ngrok.io"  # https first, only this machine
    assert pick_endpoint(parse_endpoints({"tunnels": [{"public_url": "https://d", "config": {"addr": "7801"}}]}),
                         7801) is not None
    assert parse_endpoints(None) == [] and parse_endpoints({"endpoints": "x"}) == []
