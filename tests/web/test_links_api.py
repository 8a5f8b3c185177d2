"""The link API end to end over real HTTP: linkpronto's two listeners in-process, the LiveKit test
double in-process (:mod:`helpers.inproc`), the public address reached through a TCP relay (a stand-in for a
tunnel edge) that the test switches off and on.

Every test here takes ``database_url``: it runs against the default SQLite store and against a real
PostgreSQL started by the test session (same semantics, same assertions)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from livekit.api import TokenVerifier

from helpers import wire
from helpers.inproc import InProcessDouble
from helpers.lp import TEST_KEY, TEST_SECRET, run_lp, settings_for
from helpers.net import Relay, free_port


async def test_full_link_lifecycle(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("linkpronto.stack.LADDER_RETRY_S", 0.2)  # a failed ladder is run again sooner
    public_port = free_port()
    relay = await Relay(target=None).start()  # the "tunnel" leads nowhere at first
    settings = settings_for(
        tmp_path / "data", livekit_url=livekit_inproc.url, static_url=relay.url, public_port=public_port,
        server={"database_url": database_url},
    )
    try:
        async with run_lp(settings) as lp:
            # 1. The probe through the public URL fails: the link is created but only "preparing".
            res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 0.3})
            assert res.status_code == 202, res.text
            link = res.json()
            assert link["status"] == "preparing" and link["url"] is None
            assert res.headers["location"] == f"/api/consultation-links/{link['id']}"
            status = (await lp.admin.get("/api/status")).json()
            assert status["state"] in ("verifying", "starting")
            assert any(c["name"] == "public_probe" and not c["ok"] for c in status["verification"]["checks"])

            # 2. The public address starts leading here: the link becomes ready by itself.
            relay.target = public_port
            ready = await lp.wait_link(link["id"], "ready", timeout=10)
            assert ready["url"].startswith(relay.url + "/c/")
            assert ready["verified_at"] is not None
            assert {c["name"] for c in ready["checks"]} >= {"livekit", "public_probe", "public_rtc", "link_route"}

            # 3. A new link is 201 at once now that verification is fresh.
            res = await lp.admin.post(
                "/api/consultation-links",
                json={"professional_id": "dra-ana", "client_id": "c-1", "consultation_type": "psicologia"},
            )
            assert res.status_code == 201, res.text
            link2 = res.json()
            token = link2["url"].rsplit("/", 1)[1]
            assert len(token) >= 22  # ≥ 128 bits, URL-safe base64

            # 4. The patient page answers with the privacy headers; opening it has no side effect.
            page = await lp.public.get(f"/c/{token}")
            assert page.status_code == 200
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["x-robots-tag"] == "noindex"
            assert (await lp.admin.get(f"/api/consultation-links/{link2['id']}")).json()["uses"] == 0

            # 5. Join: a LiveKit token for that room only, verified with livekit-api.
            res = await lp.public.post("/_linkpronto/api/join", json={"token": token, "display_name": "Maria"})
            assert res.status_code == 200, res.text
            grant = res.json()
            claims = TokenVerifier(TEST_KEY, TEST_SECRET, leeway=timedelta(seconds=0)).verify(grant["access_token"])
            assert claims.video is not None
            assert claims.video.room_join is True and claims.video.room == link2["room"] == grant["room"]
            assert claims.video.can_publish and claims.video.can_subscribe
            assert not claims.video.room_admin and not claims.video.room_create and not claims.video.room_list
            assert claims.name == "Maria"
            assert claims.identity == grant["identity"] and "maria" not in claims.identity.lower()
            assert "c-1" not in claims.identity and "dra-ana" not in claims.identity
            assert grant["livekit_url"] == "ws://" + relay.url.removeprefix("http://") + "/_linkpronto/livekit"
            import jwt

            raw = jwt.decode(grant["access_token"], options={"verify_signature": False})
            assert raw["exp"] - raw["nbf"] <= settings.links.join_token_ttl
            assert (await lp.admin.get(f"/api/consultation-links/{link2['id']}")).json()["uses"] == 1

            # 6. Revoke: 410 afterwards, and the double received RemoveParticipant for the room.
            import websockets

            ws = await websockets.connect(f"{livekit_inproc.ws_url}/rtc?access_token={grant['access_token']}")
            livekit_inproc.reset()
            res = await lp.admin.delete(f"/api/consultation-links/{link2['id']}")
            assert res.status_code == 200 and res.json()["status"] == "revoked"
            calls = livekit_inproc.state()["calls"]
            assert any(
                c["method"] == "RemoveParticipant" and c["room"] == link2["room"] and c["status"] == 200 for c in calls
            ), calls
            await ws.close()
            res = await lp.public.post("/_linkpronto/api/join", json={"token": token})
            assert res.status_code == 410
            assert res.json()["error"]["code"] == "LINK_GONE"
            assert (await lp.public.get(f"/c/{token}")).status_code == 410

            # 7. Expiry: 410 with the expired page.
            # (The shortest link lives 60 s: the service's clock is moved past it instead of waiting.)
            res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "expires_in_s": 60})
            short = res.json()
            short_token = short["url"].rsplit("/", 1)[1]
            links = lp.stack.links
            real_clock = links.clock
            links.clock = lambda: real_clock() + timedelta(seconds=61)
            try:
                assert (await lp.public.post("/_linkpronto/api/join", json={"token": short_token})).status_code == 410
                assert (await lp.admin.get(f"/api/consultation-links/{short['id']}")).json()["status"] == "expired"
            finally:
                links.clock = real_clock

            # 8. Max uses: the second join is 410 and the link reads "exhausted".
            res = await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "max_uses": 1})
            once = res.json()
            once_token = once["url"].rsplit("/", 1)[1]
            assert (await lp.public.post("/_linkpronto/api/join", json={"token": once_token})).status_code == 200
            assert (await lp.public.post("/_linkpronto/api/join", json={"token": once_token})).status_code == 410
            assert (await lp.admin.get(f"/api/consultation-links/{once['id']}")).json()["status"] == "exhausted"

            # 9. Unknown token: 404.
            assert (await lp.public.post("/_linkpronto/api/join", json={"token": "nope" * 8})).status_code == 404
            assert (await lp.public.get("/c/" + "nope" * 8)).status_code == 404

            listed = (await lp.admin.get("/api/consultation-links?professional_id=dra-ana")).json()["items"]
            assert {i["id"] for i in listed} == {link["id"], link2["id"]}
            only_revoked = (await lp.admin.get("/api/consultation-links?status=revoked")).json()["items"]
            assert [i["id"] for i in only_revoked] == [link2["id"]]

            issued = [token, short_token, once_token]
        # 10. The database's bytes contain no issued token (nor its URL-safe text in any form).
        data_dir = settings.data_dir
        if database_url:
            from sqlalchemy import create_engine, text

            engine = create_engine(database_url)
            with engine.connect() as conn:
                blobs = "\n".join(r[0] for r in conn.execute(text("SELECT t::text FROM consultation_links t"))).encode()
            engine.dispose()
        else:
            blobs = b"".join(p.read_bytes() for p in data_dir.glob("links.db*"))
        assert blobs
        for t in issued:
            assert t.encode() not in blobs
    finally:
        await relay.close()


async def test_admin_surface_never_on_the_public_listener(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"database_url": database_url})
    async with run_lp(settings) as lp:
        paths = [
            ("GET", "/api/status"),
            ("GET", "/api/status/stream"),
            ("POST", "/api/consultation-links"),
            ("GET", "/api/consultation-links"),
            ("GET", "/api/consultation-links/lk_1"),
            ("DELETE", "/api/consultation-links/lk_1"),
            ("POST", "/api/consultation-links/lk_1/host-token"),
            ("POST", "/api/generate-consultation-token"),
            ("POST", "/api/stack/start"),
            ("POST", "/api/stack/stop"),
            ("POST", "/api/shutdown"),
            ("GET", "/"),
            ("GET", "/call/lk_1"),
        ]
        auth = {"Authorization": f"Bearer {lp.secrets.admin_token}"}
        for method, path in paths:
            res = await lp.public.request(method, path, headers=auth)
            if path == "/":
                assert "Gerar" not in res.text and "dashboard" not in res.text.lower()
                continue
            assert res.status_code == 404, (method, path, res.status_code)
        # LiveKit's own admin surfaces never pass the gateway either.
        for path in ("/twirp/livekit.RoomService/ListRooms", "/debug/pprof",
                     "/_linkpronto/livekit/twirp/livekit.RoomService/ListRooms", "/_linkpronto/livekit/debug/pprof"):
            assert (await lp.public.post(path)).status_code == 404


# Sent byte for byte (helpers/wire.py): an HTTP client would resolve these before sending them.
TRAVERSALS = [
    "/_linkpronto/livekit/rtc/../twirp/livekit.RoomService/ListRooms",
    "/_linkpronto/livekit/rtc/%2e%2e/twirp/livekit.RoomService/ListRooms",
    "/_linkpronto/livekit/rtc/%2E%2E/%2E%2E/livekit/twirp/livekit.RoomService/ListRooms",
    "/_linkpronto/livekit//twirp/livekit.RoomService/ListRooms",
    "/_linkpronto/livekit/rtc/../../../twirp/livekit.RoomService/ListRooms",
    "/_linkpronto/livekit/./debug/pprof",
    "/_linkpronto/livekit/rtc%2f..%2ftwirp/livekit.RoomService/ListRooms",
]


async def test_traversal_on_the_wire_never_reaches_livekit_admin_nor_the_admin_api(
    tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"database_url": database_url})
    async with run_lp(settings) as lp:
        public = f"http://127.0.0.1:{lp.running.public_port}"
        # What a request that did reach LiveKit's Twirp API leaves behind in the double: a refused call
        # (these carry no admin token). linkpronto's own calls are signed and answered 200.
        def refused_calls() -> list[dict[str, object]]:
            return [c for c in livekit_inproc.state()["calls"] if c["status"] != 200]

        livekit_inproc.reset()
        direct = await wire.send(livekit_inproc.url, "POST", "/twirp/livekit.RoomService/ListRooms",
                                 headers={"Content-Type": "application/json"}, body=b"{}")
        assert direct.status == 401 and len(refused_calls()) == 1
        livekit_inproc.reset()
        for target in TRAVERSALS:
            for method in ("GET", "POST"):
                res = await wire.send(public, method, target, headers={"Content-Type": "application/json"},
                                      body=b"{}" if method == "POST" else b"")
                assert res.status in (400, 404), (method, target, res.status, res.text)
        assert refused_calls() == []
        # The admin API is not on the public listener, however the path is spelled.
        auth = {"Authorization": f"Bearer {lp.secrets.admin_token}"}
        for target in ("/_linkpronto/../api/status", "/_linkpronto/api/%2e%2e/%2e%2e/api/status",
                       "//api/status", "/_linkpronto/static/../../api/consultation-links"):
            res = await wire.send(public, "GET", target, headers=auth)
            assert res.status in (400, 404), (target, res.status, res.text)
            assert lp.secrets.instance_id not in res.text
        # Controls: the bytes did go out as written — the server, not the client, resolved them.
        res = await wire.send(public, "GET", "/_linkpronto/static/../healthz")
        assert res.status == 200, res.text
        before = livekit_inproc.state()["validate_calls"]
        res = await wire.send(public, "GET", "/_linkpronto/livekit/debug/../rtc/validate?access_token=forged")
        assert res.status == 401
        assert livekit_inproc.state()["validate_calls"] == before + 1


async def test_admin_host_and_token_checks(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"database_url": database_url})
    async with run_lp(settings) as lp:
        base = lp.running.admin_url
        async with httpx.AsyncClient(base_url=base) as anon:
            # A forged Host (DNS rebinding) is refused even with the right token.
            res = await anon.get(
                "/api/status", headers={"Host": "evil.example", "Authorization": f"Bearer {lp.secrets.admin_token}"}
            )
            assert res.status_code == 403
            assert (await anon.get("/", headers={"Host": "evil.example"})).status_code == 403
            # No token: 401. A header alone (the old dashboard header) grants nothing.
            assert (await anon.get("/api/status")).status_code == 401
            assert (await anon.get("/api/status", headers={"Authorization": "Bearer wrong"})).status_code == 401
            assert (await anon.get("/api/status", headers={"X-Linkpronto": "1"})).status_code == 401
            # The dashboard: the one-time URL sets the session cookie, then a same-origin Origin is
            # needed for anything that changes state.
            login = lp.running.dashboard_url
            res = await anon.get(login)
            assert res.status_code == 303 and res.headers["location"].startswith("/#lp-session=")
            # The session's origin-bound half (issue 19): the page keeps it and sends it as a header.
            anon.headers["X-Linkpronto-Session"] = res.headers["location"].split("=", 1)[1]
            cookie = res.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            async with httpx.AsyncClient(base_url=base) as other:  # another browser, no session
                assert (await other.get(login)).status_code == 401  # one-time
                assert not other.cookies  # and no session for it
            # Opened again by the browser it signed in (a reload, a bookmark): back to the dashboard.
            assert (await anon.get(login)).status_code == 303
            assert (await anon.get("/api/status")).status_code == 200
            cookie_only = {"Cookie": f"linkpronto_session_{base.rsplit(':', 1)[1]}={anon.cookies.get(next(iter(anon.cookies)))}"}
            async with httpx.AsyncClient(base_url=base) as thief:  # the cookie alone: nothing
                assert (await thief.get("/api/status", headers=cookie_only)).status_code == 401
            res = await anon.post(
                "/api/consultation-links",
                json={"professional_id": "x", "wait_s": 0},
                headers={"Origin": "https://evil.example"},
            )
            assert res.status_code == 403
            res = await anon.post("/api/consultation-links", json={"professional_id": "x", "wait_s": 0})
            assert res.status_code == 403  # no Origin at all
            res = await anon.post(
                "/api/consultation-links", json={"professional_id": "x", "wait_s": 0}, headers={"Origin": base}
            )
            assert res.status_code in (201, 202)
            port = base.rsplit(":", 1)[1]
            res = await anon.get("/api/status", headers={"Host": f"localhost:{port}"})
            assert res.status_code == 200


async def test_422_names_each_bad_field(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"database_url": database_url})
    async with run_lp(settings) as lp:
        res = await lp.admin.post("/api/consultation-links", json={"wait_s": 999, "max_uses": -2})
        assert res.status_code == 422
        body = res.json()
        fields = {f["field"] for f in body["fields"]}
        assert fields == {"professional_id", "wait_s", "max_uses"}
        for name in fields:
            assert name in body["error"]["message"]
        # The drop-in keeps the old route's 400 {success: false, error, fields} (tests/web/test_drop_in.py).
        res = await lp.admin.post("/api/generate-consultation-token", json={"clientId": "c"})
        assert res.status_code == 400 and "professionalId" in res.json()["error"]
        res = await lp.public.post("/_linkpronto/api/join", json={"token": 5})
        assert res.status_code == 422 and "token" in res.json()["error"]["message"]


async def test_fifty_concurrent_joins_with_max_uses_one(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(
        tmp_path / "d", livekit_url=livekit_inproc.url, server={"join_failures_per_minute": 1000, "database_url": database_url}
    )
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p", "max_uses": 1})).json()
        token = link["url"].rsplit("/", 1)[1]
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=str(lp.public.base_url), limits=limits, timeout=30) as c:
            results = await asyncio.gather(
                *(c.post("/_linkpronto/api/join", json={"token": token}) for _ in range(50))
            )
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) == 1 and codes.count(410) == 49, codes
        assert (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["uses"] == 1


async def test_repeated_failures_get_429(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"join_failures_per_minute": 5, "database_url": database_url})
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        codes = [
            (await lp.public.post("/_linkpronto/api/join", json={"token": f"guess{i:030d}"})).status_code for i in range(7)
        ]
        assert codes[:5] == [404] * 5 and codes[5:] == [429, 429]
        res = await lp.public.post("/_linkpronto/api/join", json={"token": "guess"})
        assert res.json()["error"]["code"] == "RATE_LIMITED" and res.json()["error"]["fix"]
        # The limit counts failures, and a page guess is a failure too.
        assert (await lp.public.get("/c/another-guess-000000000000")).status_code == 429


async def test_drop_in_route_shape(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"database_url": database_url})
    async with run_lp(settings) as lp:
        await lp.wait_state("ready")
        res = await lp.admin.post(
            "/api/generate-consultation-token",
            json={"professionalId": "dra-ana", "clientId": "c-9", "consultationType": "nutricao"},
        )
        assert res.status_code == 200, res.text
        body = res.json()
        assert set(body) >= {
            "success", "token", "consultationUrl", "qrCode", "whatsappDeepLink", "shortMessage",
            "expiresAt", "createdAt", "status", "verifiedAt", "linkId",
        }
        assert body["success"] is True and body["status"] == "ready"
        assert body["consultationUrl"].endswith("/c/" + body["token"])
        assert body["qrCode"].startswith("data:image/svg+xml")
        assert body["whatsappDeepLink"].startswith("https://wa.me/?text=")
        assert body["consultationUrl"] in body["shortMessage"]
        link = (await lp.admin.get(f"/api/consultation-links/{body['linkId']}")).json()
        assert link["client_id"] == "c-9" and link["consultation_type"] == "nutricao"
        qr = await lp.admin.get(link["qr_svg_url"])
        assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")


async def test_public_helpers(tmp_path: Path, livekit_inproc: InProcessDouble, database_url: str) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, server={"database_url": database_url})
    async with run_lp(settings) as lp:
        assert (await lp.public.get("/_linkpronto/healthz")).status_code == 200
        res = await lp.public.get("/.well-known/linkpronto/probe", params={"nonce": "abc"})
        body = res.json()
        assert body["nonce"] == "abc" and body["instance"] == lp.secrets.instance_id
        assert body["mac"] == lp.secrets.probe_mac("abc")
        await lp.wait_state("ready")
        cfg = (await lp.public.get("/_linkpronto/api/runtime-config")).json()
        assert cfg == {"site_url": lp.stack.public_url, "livekit_url": "ws://" + lp.stack.public_url[7:] + "/_linkpronto/livekit"}
        link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "p"})).json()
        token = link["url"].rsplit("/", 1)[1]
        res = await lp.public.post("/_linkpronto/api/device-check", json={"token": token, "result": {"ok": True}})
        assert res.status_code == 204
        seen = (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()["device_check"]
        assert seen["ok"] is True and seen["received_at"]
        host = (await lp.admin.post(f"/api/consultation-links/{link['id']}/host-token")).json()
        claims = TokenVerifier(TEST_KEY, TEST_SECRET).verify(host["access_token"])
        assert claims.video is not None and claims.video.room == link["room"] and claims.video.room_admin


def test_token_entropy_and_storage() -> None:
    from linkpronto import keys

    tokens = {keys.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) >= 32 for t in tokens)  # 24 bytes → 39 lowercase base32 characters = 192 bits
    assert all(set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for t in tokens)
    assert keys.token_hash("a") == keys.token_hash("a") != keys.token_hash("b")
