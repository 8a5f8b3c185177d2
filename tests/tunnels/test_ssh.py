"""The ssh provider against a real sshd on 127.0.0.1 (tests/fixtures/sshd.py)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from fixtures.sshd import SshServer, free_port
from linkpronto.errors import BinaryNotFound, ConfigInvalid, TunnelAuth, TunnelUnreachable
from linkpronto.schema import PartState
from linkpronto.supervise.spec import RestartPolicy
from linkpronto.tunnels.base import TunnelEvent, TunnelEventKind
from linkpronto.tunnels.ssh import SshTarget, SshTunnel
from tunnels.conftest import ORIGIN_BODY, Origin

FAST_RESTART = RestartPolicy(
    enabled=True, backoff_initial_s=0.1, backoff_factor=2.0, backoff_max_s=0.4,
    crash_loop_failures=1000, crash_loop_window_s=60.0, reset_after_ready_s=1.0,
)  # fmt: skip


def make(sshd: SshServer, origin_port: int, events: list[TunnelEvent] | None = None, **kw: object) -> SshTunnel:
    return SshTunnel(
        origin_port,
        sshd.target,
        events.append if events is not None else None,
        identity=str(sshd.identity),
        options=sshd.client_options(),
        restart=FAST_RESTART,
        open_timeout_s=10.0,
        **kw,  # type: ignore[arg-type]
    )


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=3.0) as client:
        return await client.get(url)


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_public_address_serves_the_public_listener(no_leftovers: None, sshd: SshServer, origin: Origin) -> None:
    tunnel = make(sshd, origin.port)
    try:
        url = await tunnel.open()
        assert url.startswith("http://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        assert port != origin.port and tunnel.bound_port() == port
        assert tunnel.https is False
        response = await get(f"{url}/.well-known/linkpronto/probe?nonce=1")
        assert response.status_code == 200 and response.content == ORIGIN_BODY
        status = tunnel.describe()
        assert status.state is PartState.READY and status.public_url == url and status.provider == "ssh"
    finally:
        await tunnel.close()
    assert tunnel.describe().state is PartState.STOPPED


async def test_fixed_remote_port_and_public_url_template(sshd: SshServer, origin: Origin) -> None:
    remote = free_port()
    tunnel = make(sshd, origin.port, remote_port=remote, public_url="https://consultas.example.com:{port}/")
    try:
        url = await tunnel.open()
        assert url == f"https://consultas.example.com:{remote}"
        assert tunnel.https is True
        response = await get(f"http://127.0.0.1:{remote}/")
        assert response.content == ORIGIN_BODY
    finally:
        await tunnel.close()


async def test_sshd_killed_then_back_reports_disconnected_reconnected_and_new_url(
    no_leftovers: None, sshd: SshServer, origin: Origin
) -> None:
    events: list[TunnelEvent] = []
    tunnel = make(sshd, origin.port, events)
    try:
        first = await tunnel.open()
        sshd.stop()
        await wait_for(lambda: any(e.kind is TunnelEventKind.DISCONNECTED for e in events), 10, "disconnected")
        assert tunnel.describe().state is PartState.UNHEALTHY
        # The supervisor keeps retrying with capped back-off while the server is away.
        await asyncio.sleep(0.6)
        sshd.start()
        await wait_for(lambda: any(e.kind is TunnelEventKind.RECONNECTED for e in events), 10, "reconnected")
        status = tunnel.describe()
        assert status.state is PartState.READY and status.reconnects == 1
        current = tunnel.public_url
        assert current is not None
        changed = [e for e in events if e.kind is TunnelEventKind.URL_CHANGED]
        if current != first:  # the server picked another port: the stack must hear about it
            assert changed and changed[-1].old_url == first and changed[-1].url == current
        else:
            assert not changed
        response = await get(f"{current}/")
        assert response.content == ORIGIN_BODY
        kinds = [e.kind for e in events]
        assert kinds.index(TunnelEventKind.DISCONNECTED) < kinds.index(TunnelEventKind.RECONNECTED)
    finally:
        await tunnel.close()


async def test_exit_on_forward_failure_when_the_remote_port_is_taken(
    no_leftovers: None, sshd: SshServer, origin: Origin
) -> None:
    remote = free_port()
    holder = make(sshd, origin.port, remote_port=remote)
    second = make(sshd, origin.port, remote_port=remote)
    try:
        await holder.open()
        with pytest.raises(TunnelUnreachable) as info:
            await second.open()
        # ssh's own refusal (ExitOnForwardFailure), not our open timeout: the message names the port.
        assert str(remote) in info.value.message("en")
        assert info.value.context.get("remote_port") == remote
        assert second.describe().state is PartState.UNHEALTHY
        assert second._proc is None  # the failed ssh was stopped, not left retrying
    finally:
        await second.close()
        await holder.close()


async def test_refused_key_is_tunnel_auth(sshd: SshServer, origin: Origin, tmp_path: object) -> None:
    other = SshServer()  # a second key pair the server does not know
    try:
        tunnel = SshTunnel(
            origin.port, sshd.target, identity=str(other.identity),
            options=["-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "IdentitiesOnly=yes"],
            restart=FAST_RESTART, open_timeout_s=10.0,
        )  # fmt: skip
        with pytest.raises(TunnelAuth):
            await tunnel.open()
        await tunnel.close()
    finally:
        other.close()


@pytest.mark.slow
async def test_server_down_at_open_is_unreachable_fast(no_leftovers: None, origin: Origin) -> None:
    tunnel = SshTunnel(origin.port, f"nobody@127.0.0.1:{free_port()}", restart=FAST_RESTART, open_timeout_s=10.0)
    with pytest.raises(TunnelUnreachable) as info:
        await tunnel.open()
    # ssh's own "Connection refused" (seen at once), not our 10 s open timeout running out.
    assert "Connection refused" in (info.value.detail or "")
    await tunnel.close()


async def test_process_state_is_ready_while_open(sshd: SshServer, origin: Origin) -> None:
    tunnel = make(sshd, origin.port)
    try:
        await tunnel.open()
        assert tunnel._proc is not None and tunnel._proc.state is PartState.READY
    finally:
        await tunnel.close()


def test_argv_flags_and_order() -> None:
    tunnel = SshTunnel(
        7801, "deploy@vps.example.com:2222", identity="/k/id", remote_port=8080, forward_media=True,
        media_port=7881, media_host="192.168.0.10", options=["-o", "ServerAliveInterval=30"],
        remote_bind="0.0.0.0",
    )  # fmt: skip
    argv = tunnel.argv("ssh")
    assert argv[:3] == ("ssh", "-N", "-T")
    joined = " ".join(argv)
    # Forced options come before the user's (ssh keeps the first value), defaults after.
    assert joined.index("ExitOnForwardFailure=yes") < joined.index("ServerAliveInterval=30")
    assert joined.index("ServerAliveInterval=30") < joined.index("ServerAliveInterval=5")
    assert "BatchMode=yes" in argv and "ServerAliveCountMax=3" in argv
    assert argv[argv.index("-i") + 1] == "/k/id" and argv[argv.index("-p") + 1] == "2222"
    forwards = [argv[i + 1] for i, a in enumerate(argv) if a == "-R"]
    # The media forward ends on a LAN address LiveKit gathered an ICE/TCP candidate on, never on
    # loopback: pion's TCP mux matches a connection to an ICE agent by its local address.
    assert forwards == ["0.0.0.0:8080:127.0.0.1:7801", "0.0.0.0:7881:192.168.0.10:7881"]
    assert argv[-1] == "deploy@vps.example.com"


def test_media_forward_ends_on_the_lan_address_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import linkpronto.platform

    monkeypatch.setattr(linkpronto.platform, "lan_address", lambda *a, **k: "10.1.2.3")
    argv = SshTunnel(7801, "deploy@vps.example.com", forward_media=True, media_port=7881).argv("ssh")
    forwards = [argv[i + 1] for i, a in enumerate(argv) if a == "-R"]
    assert forwards == ["0:127.0.0.1:7801", "7881:10.1.2.3:7881"]


def test_services_that_print_the_url_run_without_dash_n() -> None:
    assert "-N" not in SshTunnel(7801, "nokey@localhost.run").argv()
    assert "-N" not in SshTunnel(7801, "a.pinggy.io:443").argv()
    assert SshTarget.parse("a.pinggy.io:443") == SshTarget("", "a.pinggy.io", 443)
    with pytest.raises(ConfigInvalid):
        SshTarget.parse("not a target")


def test_url_printed_by_the_service_skips_its_own_links() -> None:
    tunnel = SshTunnel(7801, "nokey@localhost.run")
    banner = "Open https://admin.localhost.run/ to get a permanent domain, see https://localhost.run/docs/"
    assert tunnel._pick_url(banner) is None
    line = "a1b2c3d4e5f6.lhr.life tunneled with tls termination, https://a1b2c3d4e5f6.lhr.life"
    assert tunnel._pick_url(line) == "https://a1b2c3d4e5f6.lhr.life"
    pinggy = SshTunnel(7801, "a.pinggy.io:443")
    lines = "http://rnxyz-1-2-3-4.a.free.pinggy.link\nhttps://rnxyz-1-2-3-4.a.free.pinggy.link"
    assert pinggy._pick_url(lines) == "https://rnxyz-1-2-3-4.a.free.pinggy.link"


async def test_missing_ssh_binary(origin: Origin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    tunnel = SshTunnel(origin.port, "me@example.com")
    with pytest.raises(BinaryNotFound):
        await tunnel.open()
