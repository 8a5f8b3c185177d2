"""Presence events POSTed to the app (app.events_url): signed, idempotent, retried, durable."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from helpers.lp import run_lp
from helpers.net import free_port
from linkpronto.app_part import AppContext, app_environment
from linkpronto.config import defaults
from linkpronto.events.hub import backoff, load_secret, secret_from_files, sign
from linkpronto.keys import load_or_create
from linkpronto.links.store import LinkStore, sqlite_url
from linkpronto.stack import Stack
from presence.lpkit import (
    double_posting_to,
    lp_settings,
    lp_with_double,
    patient_joins,
    professional_joins,
    ready_link,
    wait_presence,
)
from presence.receiver import Received, run_receiver

pytestmark = pytest.mark.slow


async def _wait_problem(lp: Any, code: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        for p in (await lp.admin.get("/api/status")).json()["problems"]:
            if p["code"] == code:
                return dict(p)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {code} problem in the status")


def _verify(secret: str, r: Received) -> dict[str, object]:
    # Checked by hand, as an app in another language would (Stripe's t=…,v1=… scheme), not with sign().
    fields = dict(item.split("=", 1) for item in r.headers["x-linkpronto-signature"].split(","))
    assert abs(time.time() - int(fields["t"])) <= 300
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + r.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    doc: dict[str, object] = json.loads(r.body)
    assert r.headers["idempotency-key"] == doc["id"]
    assert r.headers["content-type"] == "application/json"
    return doc


def test_backoff_is_exponential_and_capped() -> None:
    mid = [backoff(n, rand=lambda: 0.5) for n in range(1, 12)]
    assert mid[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(mid) == 60.0
    assert backoff(1, rand=lambda: 0.0) == pytest.approx(0.4)
    assert backoff(1, rand=lambda: 1.0) == pytest.approx(0.6)


def test_events_secret_is_derived_per_install_or_configured(tmp_path: Path) -> None:
    plain = defaults(tmp_path)
    a, b = load_secret(plain, b"1" * 32), load_secret(plain, b"2" * 32)
    assert a != b and a == load_secret(plain, b"1" * 32) and len(a) >= 40
    configured = defaults(tmp_path, app={"events_secret": "from-config-" + "k" * 30})
    assert load_secret(configured, b"1" * 32) == "from-config-" + "k" * 30
    env = app_environment(plain.app, AppContext(None, None, "http://127.0.0.1:1", "tok", a))
    assert env["LINKPRONTO_EVENTS_SECRET"] == a


async def test_the_supervised_app_gets_the_events_secret(tmp_path: Path) -> None:
    settings = defaults(tmp_path, app={"command": "node server.js", "port": 3000})
    secrets = load_or_create(tmp_path)
    store = LinkStore(sqlite_url(tmp_path))
    try:
        stack = Stack(settings, secrets, store, admin_url="http://127.0.0.1:1")
        env = stack._app_environment(settings.app, stack._app_context())
        assert env["LINKPRONTO_EVENTS_SECRET"] == stack.events.secret == load_secret(settings, secrets.instance_secret)
        await stack.aclose()
    finally:
        store.close()


def test_signature_is_hmac_sha256_of_the_body() -> None:
    assert sign("k", b"{}", now=1_700_000_000) == (
        "t=1700000000,v1=" + hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest())


async def test_each_event_reaches_the_app_once_despite_an_injected_500(tmp_path: Path) -> None:
    with run_receiver(statuses=[500]) as app:
        async with lp_with_double(tmp_path, departure_s=0.3, events_url=app.url) as (lp, double):
            secret = lp.stack.events.secret
            assert len(secret) >= 32 and secret_from_files(lp.settings) == secret  # what `linkpronto env` prints
            link, token = await ready_link(lp)
            patient = await patient_joins(lp, double, token, "Maria")
            await wait_presence(lp, link["id"], "waiting")
            host = await professional_joins(lp, double, link["id"])
            await wait_presence(lp, link["id"], "in_call")
            await host.leave()
            await patient.leave()
            await wait_presence(lp, link["id"], "ended")
            got = await asyncio.to_thread(
                app.wait_for, lambda rs: sum(r.status == 200 for r in rs) >= 5, 20.0
            )
            await asyncio.sleep(1.5)  # time for a wrong duplicate to show up
            got = list(app.requests)
        failed = [r for r in got if r.status != 200]
        ok = [r for r in got if r.status == 200]
        assert len(failed) == 1 and len(ok) == 5
        docs = [_verify(secret, r) for r in ok]
        # every event once, in order (the professional left first: the patient waits again, then leaves);
        # the failed attempt was the first event, retried with the same body
        assert [d["presence"] for d in docs] == ["waiting", "in_call", "waiting", None, "ended"]
        assert len({d["id"] for d in docs}) == len(docs)
        assert failed[0].body == ok[0].body
        assert docs[0]["waiting_name"] == "Maria" and docs[0]["link_id"] == link["id"]
        assert docs[-1]["presence"] == "ended"


async def test_undelivered_events_survive_a_restart(tmp_path: Path) -> None:
    admin_port = free_port()
    with run_receiver(statuses=[503] * 1000) as down, double_posting_to(tmp_path, admin_port) as double:
        settings = lp_settings(tmp_path, double.url, admin_port, events_url=down.url)
        async with run_lp(settings) as lp:
            await lp.wait_state("ready", timeout=20)
            link, token = await ready_link(lp)
            await patient_joins(lp, double, token, "Maria")
            await wait_presence(lp, link["id"], "waiting")
            await asyncio.to_thread(down.wait_for, lambda rs: len(rs) >= 3, 15.0)
            problems = await _wait_problem(lp, "EVENTS_UNDELIVERED")
            assert down.url in problems["message"] and "503" in problems["message"]
        with run_receiver() as up:
            settings2 = lp_settings(tmp_path, double.url, admin_port, events_url=up.url)
            async with run_lp(settings2) as lp2:
                got = await asyncio.to_thread(up.wait_for, lambda rs: len(rs) >= 1, 15.0)
                await asyncio.sleep(0.5)
                secret = lp2.stack.events.secret
        assert [r.status for r in down.requests if r.status != 503] == []
        assert len(up.requests) == 1
        doc = _verify(secret, got[0])
        assert doc["presence"] == "waiting" and doc["id"] == json.loads(down.requests[0].body)["id"]
