"""The stack end to end: real ssh tunnel (real sshd), the LiveKit test double (a child process where the
process matters, else in-process), real processes.

A link is never ready before the ladder passes; a stale tunnel keeps links preparing; losing the
tunnel or LiveKit degrades the stack and new links wait, then become ready by themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer
from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from helpers.net import free_port

DOUBLE = Path(__file__).parent / "doubles" / "livekit_server.py"


def ssh_tunnel(sshd: SshServer, remote_port: int | None) -> dict[str, Any]:
    return {
        "provider": "ssh",
        "ssh_target": sshd.target,
        "ssh_remote_port": remote_port if remote_port is not None else 0,
        "ssh_options": sshd.client_options(),
    }


async def create(lp: Any, **body: Any) -> httpx.Response:
    body.setdefault("professional_id", "dra-ana")
    return await lp.admin.post("/api/consultation-links", json=body)


async def test_ssh_tunnel_loss_degrades_and_links_recover(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    remote = free_port()
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url, tunnel=ssh_tunnel(sshd, remote))
    async with run_lp(settings) as lp:
        status = await lp.wait_state("ready", timeout=20)
        assert status["public_url"] == f"http://127.0.0.1:{remote}"
        assert status["tunnel"]["provider"] == "ssh"
        names = {c["name"]: c for c in status["verification"]["checks"]}
        assert all(names[n]["ok"] for n in ("livekit", "public_probe", "public_rtc", "link_route"))
        assert (await create(lp)).status_code == 201

        # The ssh server goes away: degraded, and a new link waits.
        sshd.stop()
        status = await lp.wait_state("degraded", timeout=20)
        assert status["problems"], status
        res = await create(lp, wait_s=0.5)
        assert res.status_code == 202
        waiting = res.json()
        assert waiting["url"] is None

        # It comes back: the stack and the waiting link become ready by themselves.
        sshd.start()
        await lp.wait_state("ready", timeout=30)
        ready = await lp.wait_link(waiting["id"], "ready", timeout=10)
        assert ready["url"].startswith(f"http://127.0.0.1:{remote}/c/")
        res = await lp.public.post("/_linkpronto/api/join", json={"token": ready["url"].rsplit("/", 1)[1]})
        assert res.status_code == 200


async def test_url_change_follows_links_and_runtime_config(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    # Remote port 0: sshd picks a port, and a new one after the reconnect (like a free ngrok URL).
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url, tunnel=ssh_tunnel(sshd, 0))
    async with run_lp(settings) as lp:
        first = (await lp.wait_state("ready", timeout=20))["public_url"]
        sent = (await create(lp)).json()
        assert sent["url"].startswith(first)
        sshd.stop()
        await lp.wait_state("degraded", timeout=20)
        sshd.start()
        status = await lp.wait_state("ready", timeout=30)
        second = status["public_url"]
        assert second != first
        assert any(p["code"] == "TUNNEL_URL_CHANGED" for p in status["problems"])
        link = (await lp.admin.get(f"/api/consultation-links/{sent['id']}")).json()
        assert link["url"].startswith(second) and link["sent_with_old_address"] is True
        cfg = (await lp.public.get("/_linkpronto/api/runtime-config")).json()
        assert cfg == {"site_url": second, "livekit_url": "ws://" + second.removeprefix("http://") + "/_linkpronto/livekit"}
        fresh = (await create(lp)).json()
        assert fresh["sent_with_old_address"] is False


async def _status_until(lp: Any, cond: Any, timeout: float = 10) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond(status := (await lp.admin.get("/api/status", params={"lang": "en"})).json()):
        assert loop.time() < end, f"status never matched: {status}"
        await asyncio.sleep(0.02)
    return status


async def test_stale_tunnel_answering_for_another_instance_keeps_links_preparing(
    tmp_path: Path, livekit_inproc: InProcessDouble
) -> None:
    other = settings_for(tmp_path / "other", livekit_url=livekit_inproc.url)
    async with run_lp(other) as lp_other:
        # Our "public URL" reaches the other instance: same routes, another instance secret.
        mine = settings_for(
            tmp_path / "mine",
            livekit_url=livekit_inproc.url,
            static_url=f"http://127.0.0.1:{lp_other.running.public_port}",
        )
        async with run_lp(mine) as lp:
            status = await _status_until(lp, lambda s: any(
                c["name"] == "public_probe" and not c["ok"] for c in s["verification"]["checks"]))
            res = await create(lp, wait_s=0.2)  # the ladder has failed: a link waits, and is only preparing
            assert res.status_code == 202 and res.json()["status"] == "preparing"
            status = (await lp.admin.get("/api/status", params={"lang": "en"})).json()
            probe = next(c for c in status["verification"]["checks"] if c["name"] == "public_probe")
            assert probe["ok"] is False and "another linkpronto instance" in probe["detail"]
            assert status["state"] == "verifying"
            assert any(p["code"] == "VERIFY_FAILED" for p in status["problems"])


async def test_rtc_websocket_frames_and_close_codes_through_the_public_listener(
    tmp_path: Path, livekit_inproc: InProcessDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        base = f"ws://127.0.0.1:{lp.running.public_port}/_linkpronto/livekit"
        for path in ("/rtc", "/rtc/v1"):
            async with websockets.connect(f"{base}{path}?lp_echo=1") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                await ws.send(b"\x00\x01binary")
                assert await ws.recv() == b"\x00\x01binary"
                await ws.send("lp_close:4001:bye")  # the upstream closes with 4001
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        # A token LiveKit refuses is refused through the gateway too.
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{base}/rtc?access_token=forged")
        assert refused.value.response.status_code == 401


async def test_sse_stream_sends_every_state_change_in_order(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    settings = settings_for(
        tmp_path / "d", livekit_url=livekit_inproc.url, stack={"mode": "on-demand", "idle_timeout": "0.2s"}
    )
    async with run_lp(settings) as lp:
        states: list[str] = []
        first = asyncio.Event()

        async def listen() -> None:
            async with lp.admin.stream("GET", "/api/status/stream") as res:
                assert res.headers["content-type"].startswith("text/event-stream")
                event = None
                async for line in res.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "status":
                        state = json.loads(line[6:])["state"]
                        if not states or states[-1] != state:
                            states.append(state)
                        first.set()
                        if states[-2:] == ["ready", "stopped"]:
                            return

        listener = asyncio.create_task(listen())
        await asyncio.wait_for(first.wait(), 10)  # the stream's first event: the state right now
        assert lp.stack.state.value == "stopped"  # on-demand: nothing runs before the first link
        res = await create(lp, wait_s=10)  # the first link request starts the stack
        assert res.status_code == 201, res.text
        await asyncio.wait_for(listener, 20)  # ...and it stops by itself when idle
        assert states[0] == "stopped"
        assert states.index("starting") < states.index("ready") < len(states) - 1
        assert states[-1] == "stopped"
        assert "verifying" not in states or states.index("starting") < states.index("verifying") < states.index("ready")


def _double_script(tmp_path: Path) -> Path:
    """A ``livekit-server`` executable for LocalLivekit: the LiveKit test double with livekit's CLI."""
    script = tmp_path / "bin" / "livekit-server"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -u {DOUBLE} \"$@\"\n")
    script.chmod(0o755)
    return script


@pytest.mark.slow
@pytest.mark.only_on("posix")  # shell-script stand-in for livekit-server
async def test_livekit_sigkill_detected_restarted_and_waiting_links_become_ready(tmp_path: Path) -> None:
    binary = _double_script(tmp_path)
    lk_port = free_port()
    settings = settings_for(
        tmp_path / "d",
        livekit_url="",
        livekit={
            "mode": "local",
            "binary": str(binary),
            "port": lk_port,
            "tcp_port": free_port(),
            "udp_port": free_port(),
            "url": "",
            "api_key": "",
            "api_secret": "",
        },
    )
    async with run_lp(settings) as lp:
        status = await lp.wait_state("ready", timeout=20)
        lk = status["components"]["livekit"]
        assert lk["state"] == "ready" and lk["pid"]
        assert (await create(lp)).status_code == 201
        # The generated key pair is strong, and LiveKit's config never holds devkey/secret.
        config = (settings.data_dir / "livekit.yaml").read_text()
        assert "devkey" not in config and lp.secrets.livekit_api_secret in config
        os.kill(lk["pid"], signal.SIGKILL)
        status = await lp.wait_state("degraded", timeout=10)
        res = await create(lp, wait_s=0)
        assert res.status_code == 202
        waiting = res.json()["id"]
        status = await lp.wait_state("ready", timeout=20)
        assert status["components"]["livekit"]["restarts"] >= 1
        assert status["components"]["livekit"]["pid"] != lk["pid"]
        await lp.wait_link(waiting, "ready", timeout=10)
    # Nothing left behind: the double was stopped with the orchestrator.
    import psutil

    assert not [p for p in psutil.process_iter(["cmdline"]) if str(lk_port) in " ".join(p.info["cmdline"] or [])]


async def test_failed_stack_answers_503_with_the_fix(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path / "d",
        livekit_url="ws://127.0.0.1:7880",
        livekit={"api_key": "devkey", "api_secret": "secret"},
        tunnel={"provider": "static", "static_url": "https://consultas.example.com"},
    )
    async with run_lp(settings) as lp:
        await lp.wait_state("failed")
        res = await create(lp)
        assert res.status_code == 503
        err = res.json()["error"]
        assert err["code"] == "INSECURE_LIVEKIT_KEYS" and err["fix"]
        res = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "p"})
        assert res.status_code == 503 and res.json()["success"] is False


@pytest.mark.slow
async def test_creates_on_a_ready_stack_never_wait_for_a_timer(tmp_path: Path, livekit_double: RunningDouble) -> None:
    """Default ``verify`` settings, a link every 0.25 s for 45 s (longer than max_age and the re-run period
    several times over): every one is 201 ready, none 202."""
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url)
    assert (settings.verify.max_age, settings.verify.interval) == (10, 7)  # the product's defaults
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=20)
        loop = asyncio.get_running_loop()
        end = loop.time() + 45
        codes: list[int] = []
        while loop.time() < end:
            res = await create(lp)
            codes.append(res.status_code)
            assert res.status_code == 201, (len(codes), res.text)
            assert res.json()["status"] == "ready" and res.json()["url"]
            await asyncio.sleep(0.25)
        assert len(codes) > 100 and set(codes) == {201}


# -- the runner carries out decide's actions (fast: in-process parts, no child process) ------------------------
class _FakeLivekit:
    """An external LiveKit that is up once started (an Observable part, no process)."""

    name = "livekit"

    def __init__(self) -> None:
        from linkpronto.components import Observable

        self._obs = Observable()
        self._obs.status = self.status  # type: ignore[method-assign]
        self.state = "stopped"

    def status(self) -> Any:
        from linkpronto.components import PartStatus
        from linkpronto.schema import PartState

        return PartStatus(state=PartState(self.state))

    def subscribe(self, listener: Any) -> Any:
        return self._obs.subscribe(listener)

    async def start(self) -> None:
        self.state = "external"
        self._obs._notify()

    async def stop(self) -> None:
        self.state = "stopped"


def _flaky_tunnel_factory(errors: list[Exception], attempts: list[int], url: str) -> Any:
    from linkpronto.tunnels.base import TunnelProvider

    class Flaky(TunnelProvider):
        name = "static"

        async def _open(self) -> str:
            attempts.append(1)
            if errors:
                raise errors.pop(0)
            return url

        async def _close(self) -> None:
            return None

    return lambda on_event: Flaky(0, on_event)


async def _stack_with(tmp_path: Path, errors: list[Exception], attempts: list[int]) -> Any:
    from linkpronto.keys import load_or_create
    from linkpronto.links.store import LinkStore, sqlite_url
    from linkpronto.stack import Stack

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: the ladder fails fast, on loopback only
    settings = settings_for(tmp_path / "d", livekit_url=dead)
    store = LinkStore(sqlite_url(tmp_path))
    stack = Stack(settings, load_or_create(tmp_path), store, admin_url="http://127.0.0.1:1",
                  livekit=_FakeLivekit(), tunnel_factory=_flaky_tunnel_factory(errors, attempts, dead))  # type: ignore[arg-type]
    return stack, store


async def _until(cond: Any, what: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, what
        await asyncio.sleep(0.01)


async def test_runner_retries_an_unreachable_tunnel_and_reports_transitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkpronto import stack as stack_module
    from linkpronto.errors import TunnelUnreachable
    from linkpronto.machine import Transition

    monkeypatch.setattr(stack_module, "TUNNEL_RETRY_INITIAL_S", 0.01)
    attempts: list[int] = []
    stack, store = await _stack_with(tmp_path, [TunnelUnreachable(), TunnelUnreachable()], attempts)
    seen: list[Transition] = []
    stack.transition_listeners.append(seen.append)
    try:
        await stack.start()
        await _until(lambda: stack.tunnel is not None and stack.tunnel.status().state.value == "ready", "tunnel open")
        assert len(attempts) == 3  # two TUNNEL_UNREACHABLE, retried by the runner, then open
        assert stack.state.value in ("verifying", "starting")  # never failed for a recoverable error
        # Listeners get the payload: which part, from what, to what.
        assert any(t.part == "livekit" and t.new.value == "external" for t in seen)
        assert any(t.part == "tunnel" and t.new.value == "ready" for t in seen)
    finally:
        await stack.aclose()
        store.close()
    assert stack.state.value == "stopped"


async def test_runner_does_not_retry_a_refused_tunnel_and_fails(tmp_path: Path) -> None:
    from linkpronto.errors import TunnelAuth

    attempts: list[int] = []
    stack, store = await _stack_with(tmp_path, [TunnelAuth()], attempts)
    try:
        await stack.start()
        await _until(lambda: stack.state.value == "failed", "failed")
        failure = stack.failure()
        assert failure is not None and failure.code == "TUNNEL_AUTH"
        assert [p["code"] for p in stack.problems("en")].count("TUNNEL_AUTH") == 1
        for _ in range(20):  # the loop keeps running; it never opens the tunnel again
            await asyncio.sleep(0.01)
        assert len(attempts) == 1
    finally:
        await stack.aclose()
        store.close()


async def test_stop_is_never_lost_when_a_part_reports_at_that_moment(tmp_path: Path) -> None:
    """The runner's wait for its inbox ends on a cancel even when a transition lands in the same
    instant (Python 3.11's ``wait_for`` returned instead and ``stop`` hung until the 15 s heartbeat)."""
    stack, store = await _stack_with(tmp_path, [], [])
    try:
        waiting = asyncio.create_task(stack._next_messages(30))
        await asyncio.sleep(0)  # the runner is waiting for its inbox
        stack.poke()  # a part reports...
        waiting.cancel()  # ...as `stop` cancels the runner
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)
    finally:
        await stack.aclose()
        store.close()
