"""``auto``: the order, the fall-back, the status that says why, and build_tunnel from settings."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fixtures.sshd import SshServer, free_port
from linkpronto.config import Settings, defaults
from linkpronto.errors import LinkprontoError, TunnelAuth, TunnelUnreachable
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.tunnels import (
    AutoTunnel,
    Candidate,
    TunnelEvent,
    TunnelEventKind,
    TunnelProvider,
    auto_candidates,
    build_tunnel,
    tradeoffs,
)
from linkpronto.tunnels.cloudflared import CloudflaredTunnel
from linkpronto.tunnels.lan import LanTunnel
from linkpronto.tunnels.ngrok import NgrokTunnel
from linkpronto.tunnels.ngrok_agent import NgrokAgentTunnel
from linkpronto.tunnels.ssh import SshTunnel
from linkpronto.tunnels.static import StaticTunnel
from tunnels.conftest import ORIGIN_BODY, Origin


class FakeTunnel(TunnelProvider):
    """A provider that opens to a fixed URL or raises a given error."""

    tradeoff = Text("falso", "fake")

    def __init__(self, name: str, url: str = "", error: LinkprontoError | None = None) -> None:
        self.name = name
        super().__init__(7801)
        self.url = url
        self.error = error
        self.opened = 0
        self.closed = 0

    async def _open(self) -> str:
        self.opened += 1
        if self.error is not None:
            raise self.error
        return self.url

    async def _close(self) -> None:
        self.closed += 1


async def test_first_that_opens_wins_and_the_status_says_why_the_others_did_not() -> None:
    failing = FakeTunnel("ngrok", error=TunnelUnreachable(Text("fora", "offline")))
    good = FakeTunnel("cloudflared", url="https://a-b-c.trycloudflare.com")
    never = FakeTunnel("lan", url="http://192.168.0.2:7801")
    auto = AutoTunnel(7801, [
        Candidate("ngrok", lambda: failing),
        Candidate("ssh", None, "no ssh_target"),
        Candidate("cloudflared", lambda: good),
        Candidate("lan", lambda: never),
    ])  # fmt: skip
    assert await auto.open() == "https://a-b-c.trycloudflare.com"
    assert auto.active is good and never.opened == 0
    assert failing.closed == 1  # a failed candidate is cleaned up before the next one
    assert [a.outcome for a in auto.attempts] == ["failed", "skipped", "open"]
    status = auto.describe()
    assert status.provider == "cloudflared" and status.state is PartState.READY
    assert status.public_url == "https://a-b-c.trycloudflare.com"
    assert "ngrok failed (TUNNEL_UNREACHABLE: offline)" in status.detail.en
    assert "ssh skipped (no ssh_target)" in status.detail.en
    assert status.tradeoff == good.tradeoff
    await auto.close()
    assert good.closed == 1 and auto.describe().state is PartState.STOPPED


async def test_events_of_the_active_provider_reach_the_callback() -> None:
    events: list[TunnelEvent] = []
    inner = FakeTunnel("ssh", url="http://vps.example.com:8080")
    auto = AutoTunnel(7801, [Candidate("ssh", lambda: inner)], events.append)
    await auto.open()
    inner._emit(TunnelEvent(TunnelEventKind.DISCONNECTED, detail="gone"))
    assert auto.describe().state is PartState.UNHEALTHY
    inner._emit(TunnelEvent(TunnelEventKind.RECONNECTED))
    inner._emit(TunnelEvent(TunnelEventKind.URL_CHANGED, url="http://vps.example.com:8081",
                            old_url="http://vps.example.com:8080"))
    assert [e.kind for e in events] == [TunnelEventKind.DISCONNECTED, TunnelEventKind.RECONNECTED,
                                        TunnelEventKind.URL_CHANGED]
    status = auto.describe()
    assert status.public_url == "http://vps.example.com:8081" and status.reconnects == 1
    assert auto.public_url == "http://vps.example.com:8081"
    await auto.close()


async def test_nothing_opens_is_one_error_listing_every_attempt() -> None:
    auth = TunnelAuth(Text("token", "bad token"), fix=Text("conserte", "fix the token"))
    auto = AutoTunnel(7801, [
        Candidate("ngrok", lambda: FakeTunnel("ngrok", error=auth)),
        Candidate("ssh", None, "no ssh_target"),
    ])  # fmt: skip
    with pytest.raises(TunnelUnreachable) as info:
        await auto.open()
    assert "ngrok failed (TUNNEL_AUTH: bad token); ssh skipped (no ssh_target)" in info.value.message("en")
    assert info.value.fix("en") == "fix the token"
    assert auto.describe().state is PartState.UNHEALTHY  # unreachable: retried by the stack, not failed for good


def _settings(tmp_path: Path, **tunnel: object) -> Settings:
    return defaults(data_dir=tmp_path, server={"public_port": 7801, "admin_port": 7800}, tunnel=tunnel)


def test_candidate_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no cloudflared anywhere
    settings = _settings(tmp_path, ngrok_authtoken="tok", ssh_target="me@vps.example.com",
                         static_url="https://consultas.example.com")
    names = [(c.name, c.build is not None) for c in auto_candidates(settings, install_allowed=True)]
    assert names == [("static", True), ("ngrok", True), ("ssh", True), ("cloudflared", True), ("lan", True)]
    bare = auto_candidates(_settings(tmp_path), install_allowed=False)
    assert [(c.name, getattr(c.skip_reason, "en", c.skip_reason)) for c in bare] == [
        ("ngrok", "no authtoken"),
        ("ssh", "no ssh_target"),
        ("cloudflared", "not installed and installing is off (--no-install)"),
        ("lan", ""),
    ]


async def test_offline_ngrok_falls_back_to_the_next_candidate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(NgrokTunnel, "default_server_addr", f"127.0.0.1:{free_port()}")
    tunnel = build_tunnel(_settings(tmp_path, ngrok_authtoken="tok"), on_event=None,
                          install_allowed=False)
    assert isinstance(tunnel, AutoTunnel)
    url = await tunnel.open()
    assert url.startswith("http://") and isinstance(tunnel.active, LanTunnel)
    assert tunnel.https is False
    detail = tunnel.describe().detail.en
    assert "ngrok failed (TUNNEL_UNREACHABLE" in detail and "cloudflared skipped" in detail
    await tunnel.close()


async def test_auto_uses_ssh_when_ngrok_is_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd: SshServer, origin: Origin
) -> None:
    monkeypatch.setattr(NgrokTunnel, "default_server_addr", f"127.0.0.1:{free_port()}")
    settings = defaults(
        data_dir=tmp_path,
        server={"public_port": origin.port, "admin_port": free_port()},
        tunnel={"ngrok_authtoken": "tok", "ssh_target": sshd.target, "ssh_identity": str(sshd.identity),
                "ssh_options": sshd.client_options()},
    )
    tunnel = build_tunnel(settings, on_event=None, install_allowed=False)
    try:
        url = await tunnel.open()
        assert isinstance(tunnel, AutoTunnel) and isinstance(tunnel.active, SshTunnel)
        async with httpx.AsyncClient(trust_env=False) as client:
            assert (await client.get(url)).content == ORIGIN_BODY
        assert tunnel.describe().provider == "ssh"
    finally:
        await tunnel.close()


def test_build_tunnel_for_each_provider(tmp_path: Path) -> None:
    expected = {
        "ngrok": NgrokTunnel,
        "ngrok-agent": NgrokAgentTunnel,
        "cloudflared": CloudflaredTunnel,
        "ssh": SshTunnel,
        "static": StaticTunnel,
        "lan": LanTunnel,
    }
    for name, cls in expected.items():
        settings = _settings(tmp_path, provider=name, ssh_target="me@vps.example.com")
        assert type(build_tunnel(settings, on_event=None, install_allowed=False)) is cls


def test_every_provider_has_a_one_line_tradeoff() -> None:
    for name, text in tradeoffs().items():
        assert text.pt and text.en and "\n" not in text.en, name


async def test_the_detail_is_in_both_languages_rendered_when_read() -> None:
    """The pt-BR dashboard shows auto's attempts in Portuguese (issue 17, point 6), the English one in English."""
    failing = FakeTunnel("cloudflared", error=TunnelUnreachable(Text("Falha na instalação", "Install failed")))
    auto = AutoTunnel(7801, [
        Candidate("ngrok", None, Text("sem authtoken", "no authtoken")),
        Candidate("cloudflared", lambda: failing),
        Candidate("lan", lambda: FakeTunnel("lan", url="http://192.168.0.2:7801")),
    ])  # fmt: skip
    await auto.open()
    detail = auto.describe().detail
    assert "auto: ngrok ignorado (sem authtoken); cloudflared falhou (TUNNEL_UNREACHABLE: Falha na instalação)" \
        in detail.get("pt-BR")
    assert "auto: ngrok skipped (no authtoken); cloudflared failed (TUNNEL_UNREACHABLE: Install failed)" \
        in detail.get("en")
    assert "skipped" not in detail.get("pt-BR") and "failed" not in detail.get("pt-BR")
    await auto.close()
