"""Runtime probers: run one check of a probe spec, wait for readiness, watch liveness.

Every call has a deadline (the probe's ``timeout_s``, the caller's start timeout). HTTP goes
through one ``httpx.AsyncClient`` per supervised process with ``trust_env=False``: a proxy from the
environment must never sit between us and ``127.0.0.1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx

from linkpronto.supervise.spec import CustomProbe, HttpProbe, PolledProbe, ProbeResult, TcpProbe
from linkpronto.tls import client_context

BODY_EXCERPT = 80


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, follow_redirects=False, verify=client_context())


async def tcp_accepts(host: str, port: int, timeout_s: float) -> bool:
    """True when something accepts a TCP connection on ``host:port`` within ``timeout_s``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check(probe: PolledProbe, client: httpx.AsyncClient) -> ProbeResult:
    """One attempt of ``probe``, bounded by its ``timeout_s``; never raises for a failed check."""
    try:
        if isinstance(probe, HttpProbe):
            return await _check_http(probe, client)
        if isinstance(probe, TcpProbe):
            ok = await tcp_accepts(probe.host, probe.port, probe.timeout_s)
            return ProbeResult(ok, "" if ok else f"no TCP answer on {probe.host}:{probe.port}")
        if isinstance(probe, CustomProbe):
            return await asyncio.wait_for(probe.check(), probe.timeout_s)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {probe.timeout_s:g} s")
    except httpx.HTTPError as exc:
        return ProbeResult(False, _http_error(exc))
    except OSError as exc:
        return ProbeResult(False, exc.strerror or str(exc))
    raise TypeError(f"not a polled probe: {probe!r}")


async def _check_http(probe: HttpProbe, client: httpx.AsyncClient) -> ProbeResult:
    response = await client.get(probe.url, timeout=probe.timeout_s)
    if response.status_code != probe.expect_status:
        return ProbeResult(False, f"GET {_path(probe.url)} answered {response.status_code}, "
                                  f"expected {probe.expect_status}")
    if probe.expect_body is not None and not re.search(probe.expect_body, response.text):
        excerpt = response.text[:BODY_EXCERPT].replace("\n", " ")
        return ProbeResult(False, f"GET {_path(probe.url)} answered {excerpt!r}, "
                                  f"expected /{probe.expect_body}/")
    return ProbeResult(True, f"GET {_path(probe.url)} answered {response.status_code}")


def _path(url: str) -> str:
    parsed = httpx.URL(url)
    return parsed.path or "/"


def _http_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return type(exc).__name__


async def until_ready(probe: PolledProbe, client: httpx.AsyncClient, last: list[ProbeResult]) -> None:
    """Return once ``success_threshold`` consecutive checks pass. No deadline here: the caller
    races this against the child's exit and its start timeout. ``last[0]`` keeps the latest result
    (for the "why not ready" reason)."""
    successes = 0
    while True:
        result = await check(probe, client)
        last[:] = [result]
        successes = successes + 1 if result.ok else 0
        if successes >= probe.success_threshold:
            return
        await asyncio.sleep(probe.period_s)


async def until_unhealthy(probe: PolledProbe, client: httpx.AsyncClient, period_s: float | None = None,
                          on_result: list[ProbeResult] | None = None) -> ProbeResult:
    """Return the failing result once ``failure_threshold`` consecutive checks failed."""
    failures = 0
    period = probe.period_s if period_s is None else period_s
    while True:
        await asyncio.sleep(period)
        result = await check(probe, client)
        if on_result is not None:
            on_result[:] = [result]
        failures = failures + 1 if not result.ok else 0
        if failures >= probe.failure_threshold:
            return result
