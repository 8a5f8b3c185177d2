"""``cloudflared`` against the executable double (tests/doubles/cloudflared_double.py)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from doubles import cloudflared_double
from linkpronto.errors import BinaryNotFound, ConfigInvalid, TunnelUnreachable
from linkpronto.schema import PartState
from linkpronto.supervise.spec import RestartPolicy
from linkpronto.tunnels.base import TunnelEvent, TunnelEventKind
from linkpronto.tunnels.cloudflared import CloudflaredTunnel, exe_name, find_cloudflared

DOUBLE = Path(cloudflared_double.__file__)
COMMAND = (sys.executable, str(DOUBLE))
FAST_RESTART = RestartPolicy(
    enabled=True, backoff_initial_s=0.1, backoff_factor=2.0, backoff_max_s=0.4,
    crash_loop_failures=100, crash_loop_window_s=60.0, reset_after_ready_s=1.0,
)  # fmt: skip


class Control:
    """The double's control file (FAKE_CLOUDFLARED_CONTROL) and argv record (FAKE_CLOUDFLARED_RECORD)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = tmp_path / "control.json"
        self.record = tmp_path / "record.json"
        self.path.write_text("{}")
        monkeypatch.setenv("FAKE_CLOUDFLARED_CONTROL", str(self.path))
        monkeypatch.setenv("FAKE_CLOUDFLARED_RECORD", str(self.record))

    def set(self, **values: object) -> None:
        data = json.loads(self.path.read_text() or "{}")
        data.update(values)
        self.path.write_text(json.dumps(data))

    def recorded(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.record.read_text())
        return data


@pytest.fixture
def control(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Control:
    return Control(tmp_path, monkeypatch)


def quick(events: list[TunnelEvent] | None = None, **kw: object) -> CloudflaredTunnel:
    return CloudflaredTunnel(
        7801, events.append if events is not None else None, command=COMMAND, restart=FAST_RESTART,
        open_timeout_s=15.0, poll_interval_s=0.05, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_quick_tunnel_url_comes_from_the_metrics_server(no_leftovers: None, control: Control) -> None:
    tunnel = quick()
    try:
        url = await tunnel.open()
        assert url.startswith("https://") and url.endswith(".trycloudflare.com")
        assert tunnel.https is True
        argv = control.recorded()["argv"]
        assert argv == ["tunnel", "--no-autoupdate", "--metrics", tunnel.metrics_addr,
                        "--url", "http://127.0.0.1:7801"]
        assert tunnel.describe().state is PartState.READY
    finally:
        await tunnel.close()
    assert tunnel.describe().state is PartState.STOPPED


@pytest.mark.slow
async def test_waits_for_ready_before_reading_the_url(control: Control, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_CLOUDFLARED_READY_DELAY", "0.5")
    tunnel = quick()
    started = time.monotonic()
    try:
        await tunnel.open()
        assert time.monotonic() - started >= 0.5
    finally:
        await tunnel.close()


@pytest.mark.slow
async def test_url_change_disconnect_and_reconnect(no_leftovers: None, control: Control) -> None:
    events: list[TunnelEvent] = []
    tunnel = quick(events)
    try:
        first = await tunnel.open()
        control.set(hostname="renamed.trycloudflare.com")
        await wait_for(lambda: tunnel.public_url == "https://renamed.trycloudflare.com", 5, "url change")
        assert events[-1] == TunnelEvent(TunnelEventKind.URL_CHANGED, url="https://renamed.trycloudflare.com",
                                         old_url=first)
        control.set(ready=False)  # the edge connections dropped; cloudflared reconnects by itself
        await wait_for(lambda: tunnel.describe().state is PartState.UNHEALTHY, 5, "disconnected")
        control.set(ready=True)
        await wait_for(lambda: tunnel.describe().state is PartState.READY, 5, "reconnected")
        assert tunnel.describe().reconnects == 1
    finally:
        await tunnel.close()


@pytest.mark.slow
async def test_crashed_cloudflared_is_restarted_and_the_new_url_reported(
    no_leftovers: None, control: Control
) -> None:
    events: list[TunnelEvent] = []
    tunnel = quick(events)
    try:
        first = await tunnel.open()
        pid = control.recorded()["pid"]
        control.set(exit=1)
        await wait_for(lambda: TunnelEventKind.RECONNECTED in [e.kind for e in events], 10, "reconnected")
        await wait_for(lambda: tunnel.public_url != first, 5, "new quick tunnel url")
        assert control.recorded()["pid"] != pid
        kinds = [e.kind for e in events]
        assert kinds[:2] == [TunnelEventKind.DISCONNECTED, TunnelEventKind.RECONNECTED]
        assert TunnelEventKind.URL_CHANGED in kinds
    finally:
        await tunnel.close()


@pytest.mark.slow
async def test_named_tunnel_token_goes_through_the_environment(no_leftovers: None, control: Control) -> None:
    tunnel = quick(token="eyJhSECRETtoken", hostname="consultas.example.com")
    try:
        assert await tunnel.open() == "https://consultas.example.com"
        record = control.recorded()
        assert record["token_env"] is True
        assert "eyJhSECRETtoken" not in json.dumps(record["argv"])
        assert record["argv"] == ["tunnel", "--no-autoupdate", "--metrics", tunnel.metrics_addr, "run"]
        assert "Cloudflare account" in (tunnel.describe().tradeoff or tunnel.tradeoff).en
    finally:
        await tunnel.close()


async def test_named_tunnel_needs_a_hostname() -> None:
    with pytest.raises(ConfigInvalid):
        await CloudflaredTunnel(7801, token="tok", command=COMMAND).open()


@pytest.mark.slow
async def test_failing_cloudflared_is_unreachable_fast(
    no_leftovers: None, control: Control, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CLOUDFLARED_FAIL", "failed to request quick Tunnel: dial tcp: no such host")
    tunnel = quick()
    with pytest.raises(TunnelUnreachable) as info:
        await tunnel.open()
    # cloudflared's own failure line (seen as it exits), not an open timeout running out.
    assert "no such host" in (info.value.detail or "")
    assert tunnel._proc is None


async def test_missing_binary_without_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    tunnel = CloudflaredTunnel(7801, bin_dir=tmp_path / "bin", install_allowed=False)
    with pytest.raises(BinaryNotFound) as info:
        await tunnel.open()
    assert "linkpronto install cloudflared" in (info.value.fix("en") or "")


def _script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\nimport runpy, sys\nsys.argv[0] = {str(DOUBLE)!r}\n"
                    f"runpy.run_path({str(DOUBLE)!r}, run_name='__main__')\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.slow
@pytest.mark.only_on("posix")  # uses an executable script as the binary
async def test_installs_cloudflared_when_missing(
    no_leftovers: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, control: Control
) -> None:
    import linkpronto.install.cloudflared as installer

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    calls: list[tuple[Path, str]] = []

    async def fake_install(bin_dir: Path, version: str = "latest", **kw: object) -> Path:
        calls.append((bin_dir, version))
        return _script(bin_dir / exe_name())

    monkeypatch.setattr(installer, "install_cloudflared", fake_install)
    tunnel = CloudflaredTunnel(7801, bin_dir=tmp_path / "bin", install_allowed=True, restart=FAST_RESTART)
    try:
        assert (await tunnel.open()).endswith(".trycloudflare.com")
        assert calls == [(tmp_path / "bin", "latest")]
    finally:
        await tunnel.close()


def test_binary_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _script(tmp_path / "path" / exe_name())
    in_bin = _script(tmp_path / "bin" / exe_name())
    configured = _script(tmp_path / "custom" / "cf")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_cloudflared(str(configured), tmp_path / "bin") == configured
    if os.access(on_path, os.X_OK):
        assert find_cloudflared("", tmp_path / "bin") == on_path
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert find_cloudflared("", tmp_path / "bin") == in_bin
    assert find_cloudflared(str(tmp_path / "missing"), tmp_path / "bin") is None
