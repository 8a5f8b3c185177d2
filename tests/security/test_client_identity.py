"""Issue 11, attack 3: bad joins with spoofed forwarding headers never lock a real patient out, and
the limiter is exact under concurrency."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import HTTPConnection

from doubles.livekit_server import RunningDouble
from fixtures.sshd import SshServer
from helpers.lp import LP, run_lp, settings_for
from helpers.tiers import require
from linkpronto.web.common import client_address
from linkpronto.web.limiter import FailedJoinLimiter
from security.child import JOIN, page_path


def _conn(peer: str, headers: list[tuple[str, str]]) -> HTTPConnection:
    scope: dict[str, Any] = {
        "type": "http",
        "client": (peer, 5555),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "path": "/",
        "query_string": b"",
    }
    return HTTPConnection(scope)


def test_only_the_providers_header_and_only_from_its_hop() -> None:
    spoof = [("CF-Connecting-IP", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.1, 192.0.2.7")]
    # cloudflared: CF-Connecting-IP from the loopback hop.
    assert client_address(_conn("127.0.0.1", spoof), "CF-Connecting-IP") == "203.0.113.9"
    # ngrok/static: the rightmost X-Forwarded-For entry (the one the edge appended), CF ignored.
    assert client_address(_conn("127.0.0.1", spoof), "X-Forwarded-For") == "192.0.2.7"
    xff_lines = [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "10.0.0.1, 192.0.2.8")]
    assert client_address(_conn("127.0.0.1", xff_lines), "X-Forwarded-For") == "192.0.2.8"
    # ssh (no client header) and auto before it chose: unknown, never the loopback address.
    assert client_address(_conn("127.0.0.1", spoof), None) is None
    # A direct peer (lan) is itself, whatever it claims.
    assert client_address(_conn("192.168.1.20", spoof), "CF-Connecting-IP") == "192.168.1.20"
    # Garbage in the header is not an address.
    assert client_address(_conn("127.0.0.1", [("CF-Connecting-IP", "x; drop")]), "CF-Connecting-IP") is None


def test_limiter_is_exact_under_concurrency() -> None:
    limiter = FailedJoinLimiter("memory://", 10)
    results: list[bool] = []
    barrier = threading.Barrier(20)

    def fail() -> None:
        barrier.wait()
        results.append(limiter.fail("203.0.113.5"))

    threads = [threading.Thread(target=fail) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 10 and results.count(False) == 10


async def test_429_after_exactly_n_failures_at_concurrency_20(tmp_path: Path, livekit_double: RunningDouble) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url, server={"join_failures_per_minute": 7})
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        codes = await asyncio.gather(
            *(lp.public.post(JOIN, json={"token": f"guess-{i:030d}"}) for i in range(20))
        )
        statuses = sorted(r.status_code for r in codes)
        assert statuses == [404] * 7 + [429] * 13, statuses


SPOOFS = [
    {"CF-Connecting-IP": "203.0.113.1"},
    {"X-Forwarded-For": "203.0.113.1"},
    {"X-Forwarded-For": "198.51.100.7, 203.0.113.1"},
]


async def _attack_then_patient(lp: LP, base_url: str) -> None:
    res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra", "max_uses": 1, "wait_s": 20})
    assert res.status_code == 201, res.text
    token = res.json()["url"].rsplit("/", 1)[1]
    old = (await lp.admin.post("/api/consultation-links", json={"professional_id": "dra", "wait_s": 20})).json()
    await lp.admin.delete(f"/api/consultation-links/{old['id']}")
    old_token = old["url"].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as c:
        for i in range(40):
            spoof = dict(SPOOFS[i % len(SPOOFS)])
            if i % 2:  # rotating the claimed address
                spoof = {k: v.replace("203.0.113.1", f"203.0.113.{i + 2}") for k, v in spoof.items()}
            r = await c.post(JOIN, json={"token": f"bad-{i:030d}"}, headers=spoof)
            assert r.status_code in (404, 429)
        last = await c.post(JOIN, json={"token": "bad-again-000000000000000000"})
        assert last.status_code == 429  # the attacker is limited...
        # ...and the real patient, even one claiming the victim's address, is not.
        page = await c.get(page_path(token), headers=SPOOFS[0])
        assert page.status_code == 200
        joined = await c.post(JOIN, json={"token": token}, headers=SPOOFS[1])
        assert joined.status_code == 200, joined.text
        assert joined.json()["access_token"]
        # A patient coming back to a revoked link gets its true page, not 429.
        assert (await c.get(page_path(old_token))).status_code == 410
        assert (await c.post(JOIN, json={"token": old_token})).status_code == 410


@pytest.mark.parametrize("provider", ["static", "auto"])
async def test_spoofed_bad_joins_never_stop_a_patient(
    provider: str, tmp_path: Path, livekit_double: RunningDouble
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_double.url, tunnel={"provider": provider})
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=20)
        await _attack_then_patient(lp, str(lp.public.base_url))


@pytest.mark.slow
async def test_spoofed_bad_joins_never_stop_a_patient_over_ssh(
    tmp_path: Path, livekit_double: RunningDouble, sshd: SshServer
) -> None:
    settings = settings_for(
        tmp_path / "d",
        livekit_url=livekit_double.url,
        tunnel={
            "provider": "ssh",
            "ssh_target": sshd.target,
            "ssh_remote_port": 0,
            "ssh_options": sshd.client_options(),
        },
    )
    async with run_lp(settings) as lp:
        doc = await lp.wait_state("ready", timeout=40)
        await _attack_then_patient(lp, doc["public_url"])


@pytest.mark.slow
async def test_auto_serves_the_lan_only_when_it_chose_lan(tmp_path: Path, livekit_double: RunningDouble) -> None:
    from linkpronto.tunnels.lan import lan_address

    lan = lan_address()
    require(lan != "127.0.0.1", "a LAN address on this machine (lan_address() found only loopback)")

    async def reachable(port: int) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as c:
                return (await c.get(f"http://{lan}:{port}/_linkpronto/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    # auto choosing static: loopback only.
    async with run_lp(settings_for(tmp_path / "a", livekit_url=livekit_double.url, tunnel={"provider": "auto"})) as lp:
        doc = await lp.wait_state("ready", timeout=20)
        assert doc["tunnel"]["provider"] == "static"
        assert not await reachable(lp.running.public_port)
    # auto with nothing but lan: the LAN address is added.
    settings = settings_for(
        tmp_path / "b",
        livekit_url=livekit_double.url,
        tunnel={"provider": "auto", "static_url": "", "cloudflared_binary": str(tmp_path / "no-cloudflared")},
        stack={"install": False},
    )
    async with run_lp(settings) as lp:
        for _ in range(100):
            doc = (await lp.admin.get("/api/status")).json()
            if doc["tunnel"]["provider"] == "lan" and await reachable(lp.running.public_port):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"LAN listener not added: {doc['tunnel']}")
