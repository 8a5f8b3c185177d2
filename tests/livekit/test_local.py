"""LiveKit local mode, with the LiveKit test double (tests/doubles/livekit_server.py) run as
``livekit-server`` from a temporary PATH."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from doubles.livekit_server import run_double
from helpers.tiers import require
from linkpronto.config import Settings, defaults
from linkpronto.errors import BinaryNotFound, ConfigInvalid, InsecureLivekitKeys, PortInUse
from linkpronto.livekit.local import (
    LocalLivekit,
    advertised_node_ip,
    bind_addresses,
    check_livekit_keys,
    find_livekit_binary,
)
from linkpronto.schema import PartState

DOUBLE = Path(__file__).resolve().parents[1] / "doubles" / "livekit_server.py"
KEY = "APIlinkprontoTest"
SECRET = secrets.token_urlsafe(32)
posix_only = pytest.mark.only_on("posix")  # shebang script and POSIX signals


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_livekit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ``livekit-server`` executable on PATH that runs the double."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "livekit-server"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u "{DOUBLE}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    yield script


def settings_for(tmp_path: Path, port: int, provider: str = "cloudflared", **livekit: object) -> Settings:
    return defaults(data_dir=tmp_path / "data", livekit={"port": port, "node_ip": "192.168.0.10", **livekit},
                    tunnel={"provider": provider})


# --- keys ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", ["auto", "ngrok", "cloudflared", "ssh", "static", "ngrok-agent"])
def test_devkey_secret_is_refused_beyond_the_lan(provider: str) -> None:
    with pytest.raises(InsecureLivekitKeys) as caught:
        check_livekit_keys("devkey", "secret", provider)
    assert caught.value.code == "INSECURE_LIVEKIT_KEYS"
    assert "devkey/secret" in caught.value.text.en
    assert caught.value.fix_text is not None


def test_a_short_secret_is_refused_beyond_the_lan() -> None:
    with pytest.raises(InsecureLivekitKeys) as caught:
        check_livekit_keys("mykey", "x" * 31, "ngrok")
    assert "31" in caught.value.text.en
    assert "x" * 31 not in caught.value.text.en + caught.value.text.pt  # the secret is never shown


def test_weak_keys_are_accepted_on_the_lan_and_strong_keys_everywhere() -> None:
    check_livekit_keys("devkey", "secret", "lan")
    check_livekit_keys(KEY, SECRET, "ngrok")
    check_livekit_keys(KEY, "y" * 32, "cloudflared")


def test_empty_keys_are_a_config_error() -> None:
    with pytest.raises(ConfigInvalid):
        check_livekit_keys("", SECRET, "lan")
    with pytest.raises(ConfigInvalid):
        check_livekit_keys(KEY, "", "ngrok")


async def test_start_refuses_insecure_keys_before_running_anything(tmp_path: Path, fake_livekit: Path) -> None:
    lk = LocalLivekit(settings_for(tmp_path, _free_port(), "ngrok"), "devkey", "secret")
    with pytest.raises(InsecureLivekitKeys):
        await lk.start()
    assert lk.process is None
    assert lk.status().state is PartState.FAILED
    assert lk.status().error is not None and lk.status().error.code == "INSECURE_LIVEKIT_KEYS"
    assert not lk.config_path.exists()


# --- binary --------------------------------------------------------------------------------------
def test_binary_from_settings_then_path_then_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    local = data / "bin" / "livekit-server"
    local.parent.mkdir(parents=True)
    local.write_text("#!/bin/sh\n", encoding="utf-8")
    on_path = tmp_path / "livekit-server-on-path"

    def which(name: str) -> str | None:
        return str(on_path) if name == "livekit-server" else None

    configured = tmp_path / "custom-livekit"
    configured.write_text("", encoding="utf-8")
    s = settings_for(tmp_path, 7880, binary=str(configured))
    assert find_livekit_binary(s, data, which) == configured
    assert find_livekit_binary(settings_for(tmp_path, 7880), data, which) == on_path
    assert find_livekit_binary(settings_for(tmp_path, 7880), data, lambda _: None) == local


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(BinaryNotFound) as caught:
        find_livekit_binary(settings_for(tmp_path, 7880), tmp_path / "data", lambda _: None)
    assert caught.value.fix_text is not None
    assert "linkpronto install livekit" in caught.value.fix_text.en
    assert "linkpronto install livekit" in caught.value.fix_text.pt
    with pytest.raises(BinaryNotFound):
        find_livekit_binary(settings_for(tmp_path, 7880, binary="/nope/livekit-server"), tmp_path, lambda _: None)


# --- config --------------------------------------------------------------------------------------
def test_config_file_has_the_keys_ports_node_ip_and_is_private(tmp_path: Path) -> None:
    lk = LocalLivekit(settings_for(tmp_path, 7990, "ngrok"), KEY, SECRET,
                      which=lambda name: "/usr/bin/true" if name == "livekit-server" else None)
    binary, path = lk.prepare()
    assert binary == Path("/usr/bin/true")
    assert path == tmp_path / "data" / "livekit.yaml"
    conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert conf["port"] == 7990
    assert conf["keys"] == {KEY: SECRET}
    assert conf["rtc"] == {"tcp_port": 7881, "udp_port": 7882, "use_external_ip": False, "node_ip": "192.168.0.10"}
    assert conf["bind_addresses"] == ["127.0.0.1"]
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bind_addresses_follow_the_tunnel_mode() -> None:
    assert bind_addresses("lan") == ["0.0.0.0"]
    for provider in ("auto", "ngrok", "cloudflared", "ssh", "static"):
        assert bind_addresses(provider) == ["127.0.0.1"]


def test_node_ip_defaults_to_the_lan_address(tmp_path: Path) -> None:
    from linkpronto import platform

    s = defaults(data_dir=tmp_path, livekit={"port": 7991})
    lk = LocalLivekit(s, KEY, SECRET, which=lambda _: "/usr/bin/true")
    _, path = lk.prepare()
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["rtc"]["node_ip"] == platform.lan_address()


@pytest.mark.slow  # runs the real ssh client (ssh -G)
def test_node_ip_with_ssh_forward_media_is_the_ssh_servers_address(tmp_path: Path) -> None:
    """The phone's ICE/TCP goes to the VPS (the forward listens there): LiveKit must advertise the
    VPS's address without the user copying it into livekit.node_ip. The host is what the real
    ``ssh -G`` says (``HostName`` from ssh_options / ~/.ssh/config applied; nothing is connected)."""
    import shutil

    from linkpronto import platform
    from linkpronto.tunnels import ssh

    require(shutil.which("ssh") is not None, "the OpenSSH client (apt-get install openssh-client)")
    ssh._server_address.cache_clear()

    def node_ip(**tunnel: object) -> str:
        s = defaults(data_dir=tmp_path, livekit={"port": 7992},
                     tunnel={"provider": "ssh", "ssh_forward_media": True, **tunnel})
        _, path = LocalLivekit(s, KEY, SECRET, which=lambda _: "/usr/bin/true").prepare()
        return str(yaml.safe_load(path.read_text(encoding="utf-8"))["rtc"]["node_ip"])

    assert node_ip(ssh_target="deploy@203.0.113.7") == "203.0.113.7"
    # an alias whose real address comes from ssh's own configuration (here ssh_options; ~/.ssh/config alike)
    assert node_ip(ssh_target="deploy@consultas-vps", ssh_options=["-o", "HostName=198.51.100.23"]) == "198.51.100.23"
    # a loopback ssh server reaches no phone: this machine's LAN address, and the media rung measures
    assert node_ip(ssh_target="me@127.0.0.1") == platform.lan_address()
    # without the media forward nothing changes: the LAN address
    s = defaults(data_dir=tmp_path, livekit={"port": 7993}, tunnel={"provider": "ssh", "ssh_target": "d@203.0.113.7"})
    assert advertised_node_ip(s) == platform.lan_address()
    # and livekit.node_ip always wins
    s = defaults(data_dir=tmp_path, livekit={"node_ip": "192.0.2.44"},
                 tunnel={"provider": "ssh", "ssh_target": "d@203.0.113.7", "ssh_forward_media": True})
    assert advertised_node_ip(s) == "192.0.2.44"


# --- running the double --------------------------------------------------------------------------
@pytest.mark.slow
@posix_only
async def test_starts_the_double_and_is_ready_only_when_it_accepts_our_key(
    tmp_path: Path, fake_livekit: Path
) -> None:
    port = _free_port()
    lines: list[str] = []
    lk = LocalLivekit(settings_for(tmp_path, port), KEY, SECRET, on_line=lines.append)
    changes: list[PartState] = []
    lk.subscribe(lambda _st: changes.append(lk.status().state))
    await lk.start()
    try:
        assert lk.binary == fake_livekit
        assert lk.status().state is PartState.STARTING
        assert await lk.wait_ready(20)
        assert lk.status().state is PartState.READY
        assert lk.status().pid is not None
        assert (await lk.check()).ok
        assert PartState.STARTING in changes and changes[-1] is PartState.READY
        assert any("starting LiveKit server" in line for line in lines)
        assert all(SECRET not in line for line in lines + lk.log_tail())
        assert lk.process is not None and SECRET in lk.process.spec.redact
    finally:
        await lk.stop()
    assert lk.status().state is PartState.STOPPED


@pytest.mark.slow
@posix_only
async def test_sigkill_of_livekit_is_detected_and_it_comes_back(tmp_path: Path, fake_livekit: Path) -> None:
    lk = LocalLivekit(settings_for(tmp_path, _free_port()), KEY, SECRET)
    await lk.start()
    try:
        assert await lk.wait_ready(20)
        proc = lk.process
        assert proc is not None and proc.pid is not None
        first = proc.pid
        # The double runs as `sh -c exec python ...`: the pid is the double itself.
        os.kill(first, signal.SIGKILL)
        killed = time.monotonic()
        # Detection time is bench/recovery.py's (target ≤ 0.5 s); here: the kill is seen at all.
        while proc.state is PartState.READY and time.monotonic() - killed < 10:
            await asyncio.sleep(0.005)
        assert proc.state is not PartState.READY
        assert lk.status().state is PartState.RESTARTING
        assert await lk.wait_ready(20)
        assert proc.pid != first and proc.restarts == 1
    finally:
        await lk.stop()


@pytest.mark.slow
async def test_adopts_a_running_livekit_with_our_keys(tmp_path: Path, fake_livekit: Path) -> None:
    with run_double({KEY: SECRET}) as double:
        lk = LocalLivekit(settings_for(tmp_path, double.port), KEY, SECRET)
        await lk.start()
        try:
            assert lk.status().state is PartState.ADOPTED
            assert lk.status().pid == double.process.pid
            assert await lk.wait_ready(1)
        finally:
            await lk.stop()
        assert double.process.poll() is None  # not ours to stop


@pytest.mark.slow
async def test_a_livekit_with_other_keys_on_the_port_is_port_in_use(tmp_path: Path, fake_livekit: Path) -> None:
    with run_double({"otherkey": "o" * 40}) as double:
        lk = LocalLivekit(settings_for(tmp_path, double.port), KEY, SECRET)
        with pytest.raises(PortInUse) as caught:
            await lk.start()
        assert str(double.process.pid) in caught.value.text.en
        assert caught.value.fix_text is not None and "livekit.port" in caught.value.fix_text.en
        assert lk.status().state is PartState.FAILED
        await lk.stop()


# --- auto-install --------------------------------------------------------------------------------
@pytest.mark.slow
@posix_only
async def test_missing_binary_is_installed_when_allowed(tmp_path: Path, fake_livekit: Path) -> None:
    calls: list[tuple[Path, str]] = []

    async def installer(bin_dir: Path, version: str) -> Path:
        calls.append((bin_dir, version))
        bin_dir.mkdir(parents=True, exist_ok=True)
        target = bin_dir / "livekit-server"
        target.write_bytes(fake_livekit.read_bytes())
        target.chmod(0o755)
        return target

    s = settings_for(tmp_path, _free_port())
    lk = LocalLivekit(s, KEY, SECRET, which=lambda _: None, install_allowed=True, installer=installer)
    details: list[str] = []
    lk.subscribe(lambda _st: details.append(_st.detail.en))
    await lk.start()
    try:
        assert calls == [(s.data_dir / "bin", s.livekit.version)]
        assert any(d.startswith("installing livekit-server") for d in details)
        assert lk.binary == s.data_dir / "bin" / "livekit-server"
        assert await lk.wait_ready(20)
    finally:
        await lk.stop()


async def test_missing_binary_without_install_permission_is_binary_not_found(tmp_path: Path) -> None:
    async def installer(bin_dir: Path, version: str) -> Path:
        raise AssertionError("must not install")

    lk = LocalLivekit(settings_for(tmp_path, _free_port()), KEY, SECRET, which=lambda _: None,
                      install_allowed=False, installer=installer)
    with pytest.raises(BinaryNotFound) as caught:
        await lk.start()
    assert caught.value.fix_text is not None and "linkpronto install livekit" in caught.value.fix_text.pt
    assert lk.status().state is PartState.FAILED
    assert lk.status().error is caught.value
