"""The verification ladder (``verify.py``), rung by rung, with ``httpx.MockTransport`` (fast: no process).

Every branch a user can meet: LiveKit's local check (answers, wrong key, not OK, unreachable, not
configured, Cloud), the app's check, the public probe (right HMAC, wrong HMAC = another instance/stale
tunnel, no nonce echo, an offline page, not JSON, no URL yet), signalling (validate + a real WebSocket
upgrade to an in-process server on loopback, Cloud straight to LiveKit), the link route (the tunnel's
warning page, linkpronto's page and its files, ``ASSETS_MISSING``, the app's own route) and every media
outcome of :func:`verify.assess_media`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets

from linkpronto import errors, paths, verify
from linkpronto.tunnels import cloudflared, ngrok
from linkpronto.verify import Check, Ladder, LadderInput, MediaAssessment, assess_media
from linkpronto.web import assets

KEY, SECRET, INSTANCE = "APIverify", "s" * 40, "inst-1"
MAC_KEY = b"probe-key"
LIVEKIT = "http://127.0.0.1:7880"
APP = "http://127.0.0.1:3000"
OWN_PAGE = '<html><link rel="stylesheet" href="/_linkpronto/static/app.css">...</html>'
NGROK_WARNING = (
    '<html><body><h1>You are about to visit abc.ngrok-free.app</h1>'
    '<p>Set the <code>ngrok-skip-browser-warning</code> request header to bypass this warning.</p></body></html>'
)
NGROK_OFFLINE = "<html><body>Tunnel abc.ngrok-free.app not found ERR_NGROK_3200</body></html>"
CF_CHALLENGE = '<html><form id="challenge-form" class="cf-browser-verification">Checking your browser</form></html>'


def mac(nonce: str) -> str:
    return hmac.new(MAC_KEY, nonce.encode(), hashlib.sha256).hexdigest()


Handler = Callable[[httpx.Request], httpx.Response]


class World:
    """What answers each URL the ladder asks; a test changes one piece and sees one rung change."""

    def __init__(self, public_url: str) -> None:
        self.public = public_url
        self.seen: list[httpx.Request] = []
        self.livekit_root: tuple[int, str] = (200, "OK")
        self.validate_status = 200
        self.public_validate_status = 200
        self.app_health = 200
        self.probe: Callable[[str], httpx.Response] = lambda nonce: httpx.Response(
            200, json={"nonce": nonce, "instance": INSTANCE, "mac": mac(nonce)})
        self.page: httpx.Response = httpx.Response(404, text=OWN_PAGE)
        self.files: dict[str, httpx.Response] = {}
        self.down: set[str] = set()  # hosts (host:port) that refuse connections

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        url = request.url
        origin = f"{url.scheme}://{url.host}:{url.port}" if url.port else f"{url.scheme}://{url.host}"
        if f"{url.host}:{url.port}" in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if origin == LIVEKIT or origin.startswith("https://proj.livekit.cloud"):
            if url.path == "/":
                status, text = self.livekit_root
                return httpx.Response(status, text=text)
            if url.path == "/rtc/validate":
                ok = request.url.params.get("access_token")
                return httpx.Response(self.validate_status if ok else 400, text="validate")
        if origin == APP:
            return httpx.Response(self.app_health, text="app")
        if origin == self.public:
            if url.path == paths.PROBE:
                return self.probe(url.params["nonce"])
            if url.path == paths.LIVEKIT + "/rtc/validate":
                return httpx.Response(self.public_validate_status, text="validate")
            if url.path.startswith(paths.STATIC + "/"):
                name = url.path[len(paths.STATIC) + 1:]
                return self.files.get(name, httpx.Response(200, headers={"content-length": "10"}))
            return self.page
        return httpx.Response(599, text=f"unexpected {request.method} {url}")


@pytest.fixture
async def signalling() -> AsyncIterator[str]:
    """A WebSocket server on loopback standing in for LiveKit's /rtc through the public URL."""
    paths_seen: list[str] = []

    async def handler(ws: Any) -> None:
        paths_seen.append(ws.request.path)
        await ws.close()

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"


def _input(public_url: str | None, **overrides: Any) -> LadderInput:
    base = LadderInput(
        public_url=public_url,
        instance_id=INSTANCE,
        probe_mac=mac,
        api_key=KEY,
        api_secret=SECRET,
        livekit_local_url=LIVEKIT,
        livekit_cloud_url=None,
        app_url=None,
        app_health_path="/",
        link_path=paths.PATIENT_PAGE,
        media=MediaAssessment("anywhere", verify.Text("x", "x")),
    )
    return replace(base, **overrides)


async def run(world: World, inp: LadderInput) -> dict[str, Check]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(world.handler)) as client:
        result = await Ladder(client).run(inp)
    return {c.name: c for c in result.checks}


@pytest.fixture
def world(signalling: str) -> World:
    return World(signalling)


# -- the whole ladder -------------------------------------------------------------------------------
async def test_everything_right_is_ready(world: World) -> None:
    checks = await run(world, _input(world.public))
    assert [n for n in checks] == ["livekit", "public_probe", "public_rtc", "link_route", "media"]
    assert all(c.ok for c in checks.values()), {n: c.detail.en for n, c in checks.items() if not c.ok}
    assert all(c.fix is None for c in checks.values())
    assert "app" not in checks  # no app configured: no app rung


# -- 1. LiveKit, locally ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda w: setattr(w, "validate_status", 401), "refused our API key"),
        (lambda w: setattr(w, "validate_status", 500), "/rtc/validate answered 500"),
        (lambda w: setattr(w, "livekit_root", (200, "nginx")), "GET / answered 200"),
        (lambda w: w.down.add("127.0.0.1:7880"), "no answer at http://127.0.0.1:7880"),
    ],
)
async def test_livekit_rung_fails_with_its_reason_and_fix(world: World, change: Any, words: str) -> None:
    change(world)
    check = (await run(world, _input(world.public)))["livekit"]
    assert not check.ok and words in check.detail.en and check.detail.pt != check.detail.en
    assert check.fix == errors.LivekitCheckFailed.default_fix


async def test_livekit_not_configured(world: World) -> None:
    check = (await run(world, _input(world.public, livekit_local_url=None)))["livekit"]
    assert not check.ok and "not configured" in check.detail.en


async def test_livekit_cloud_is_checked_without_its_root_and_signalling_goes_straight_to_it(world: World) -> None:
    world.livekit_root = (404, "not ours")  # LiveKit Cloud's root is not a health endpoint
    cloud = "wss://proj.livekit.cloud"
    checks = await run(world, _input(world.public, livekit_local_url=None, livekit_cloud_url=cloud))
    assert checks["livekit"].ok and checks["public_rtc"].ok
    assert checks["public_rtc"].detail.en.startswith("LiveKit Cloud")
    asked = [(r.url.host, r.url.path) for r in world.seen]
    assert ("proj.livekit.cloud", "/") not in asked and ("proj.livekit.cloud", "/rtc/validate") in asked
    assert all(r.url.path != paths.LIVEKIT + "/rtc/validate" for r in world.seen)  # not via the public URL


# -- 2. the app -------------------------------------------------------------------------------------
async def test_app_rung_passes_below_500_and_fails_with_the_app_fix(world: World) -> None:
    assert (await run(world, _input(world.public, app_url=APP)))["app"].ok
    world.app_health = 502
    check = (await run(world, _input(world.public, app_url=APP)))["app"]
    assert not check.ok and check.detail.en == "HTTP 502" and check.fix == errors.AppCheckFailed.default_fix


# -- 3. the public probe ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("probe", "words"),
    [
        (lambda n: httpx.Response(200, json={"nonce": n, "instance": INSTANCE, "mac": "0" * 64}), "stale tunnel"),
        (lambda n: httpx.Response(200, json={"nonce": n, "instance": "other", "mac": mac(n)}), "stale tunnel"),
        (lambda n: httpx.Response(200, json={"nonce": "not-ours", "instance": INSTANCE}), "does not echo our nonce"),
        (lambda n: httpx.Response(404, text=NGROK_OFFLINE), "answered HTTP 404"),
        (lambda n: httpx.Response(200, text="<html>parking page</html>"), "not linkpronto"),
    ],
    ids=["wrong-hmac", "another-instance", "no-nonce-echo", "offline-page", "not-json"],
)
async def test_probe_refuses_anything_but_this_instance(world: World, probe: Any, words: str) -> None:
    world.probe = probe
    check = (await run(world, _input(world.public)))["public_probe"]
    assert not check.ok and words in check.detail.en
    assert check.fix == errors.ProbeMismatch.default_fix


async def test_probe_sends_a_fresh_nonce_and_skips_the_warning_page(world: World) -> None:
    await run(world, _input(world.public))
    await run(world, _input(world.public))
    probes = [r for r in world.seen if r.url.path == paths.PROBE]
    assert len(probes) == 2 and probes[0].url.params["nonce"] != probes[1].url.params["nonce"]
    assert all(r.headers.get(k) == v for r in probes for k, v in ngrok.SKIP_WARNING_HEADER.items())


async def test_no_public_url_yet_fails_every_public_rung_with_the_wait_fix(world: World) -> None:
    checks = await run(world, _input(None))
    for name in ("public_probe", "public_rtc", "link_route"):
        assert not checks[name].ok and checks[name].detail == errors.NoPublicUrl.default_message
        assert checks[name].fix == errors.NoPublicUrl.default_fix
    assert checks["livekit"].ok


# -- 4. signalling through the public URL -----------------------------------------------------------
async def test_signalling_validate_refused(world: World) -> None:
    world.public_validate_status = 502
    check = (await run(world, _input(world.public)))["public_rtc"]
    assert not check.ok and "answered 502" in check.detail.en and check.fix == errors.SignallingUnreachable.default_fix


async def test_signalling_websocket_upgrade_is_really_made(world: World) -> None:
    """validate passes (mock) but nothing accepts the WebSocket: the rung fails on the upgrade itself."""
    from helpers.net import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    world.public = dead
    check = (await run(world, _input(dead)))["public_rtc"]
    assert not check.ok and "the connection failed" in check.detail.en


# -- 5. the link route ------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "provider"), [(NGROK_WARNING, "ngrok"), (CF_CHALLENGE, "cloudflare")])
async def test_a_tunnel_warning_page_in_front_of_the_link_is_caught(world: World, body: str, provider: str) -> None:
    world.page = httpx.Response(200, text=body)
    check = (await run(world, _input(world.public)))["link_route"]
    assert not check.ok and check.detail == errors.TunnelWarningPage.default_message
    assert check.fix == errors.TunnelWarningPage.default_fix and "ngrok" in check.fix.en
    # The page request looks like a phone's browser, without the skip header: it sees what patients see.
    page = next(r for r in world.seen if r.url.path.startswith("/_linkpronto/c/"))
    assert "Mobile" in page.headers["user-agent"] and "ngrok-skip-browser-warning" not in page.headers


def test_the_warning_markers_are_the_providers_own() -> None:
    assert set(verify.WARNING_MARKERS) == {*ngrok.WARNING_PAGE_MARKERS, *cloudflared.WARNING_PAGE_MARKERS}
    assert any(m in NGROK_WARNING for m in ngrok.WARNING_PAGE_MARKERS)


async def test_own_page_missing_its_marker_is_link_route_failed(world: World) -> None:
    world.page = httpx.Response(502, text="<html>Bad gateway</html>")
    check = (await run(world, _input(world.public)))["link_route"]
    assert not check.ok and "HTTP 502" in check.detail.en and check.fix == errors.LinkRouteFailed.default_fix


@pytest.mark.parametrize(
    "broken", [httpx.Response(404), httpx.Response(200, headers={"content-length": "0"})], ids=["404", "empty"]
)
async def test_a_file_the_page_loads_missing_is_assets_missing(world: World, broken: httpx.Response) -> None:
    world.files["vendor/" + paths.LIVEKIT_BUNDLE] = broken
    check = (await run(world, _input(world.public)))["link_route"]
    assert not check.ok and check.detail.en.startswith("ASSETS_MISSING: vendor/livekit-client.umd.js")
    assert check.fix == errors.AssetsMissing.ladder_fix
    heads = {r.url.path.rsplit("/static/", 1)[1] for r in world.seen if r.method == "HEAD"}
    assert heads == set(paths.PATIENT_FILES)


async def test_bundle_not_installed_here_is_assets_missing_before_any_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assets, "vendor_ready", lambda: False)
    check = (await run(world, _input(world.public)))["link_route"]
    assert not check.ok and "ASSETS_MISSING" in check.detail.en and "is not installed" in check.detail.en
    assert not any(r.url.path.startswith("/_linkpronto/c/") for r in world.seen)


async def test_the_app_s_own_link_route(world: World) -> None:
    inp = _input(world.public, app_url=APP, link_path="/consultations/client/{token}")
    world.page = httpx.Response(200, text="<html>consulta</html>")
    check = (await run(world, inp))["link_route"]
    assert check.ok and "HTTP 200" in check.detail.en
    asked = [r.url.path for r in world.seen if r.url.path.startswith("/consultations/")]
    assert asked == [f"/consultations/client/{paths.PROBE_TOKEN}"]
    world.page = httpx.Response(404, text="<html>not found</html>")
    check = (await run(world, inp))["link_route"]
    assert not check.ok and check.fix == errors.AppLinkRouteMissing.default_fix


async def test_a_rung_that_hangs_is_a_timeout_with_its_fix() -> None:
    async def hang() -> verify.Outcome:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    check = await verify._timed("public_probe", hang, budget_s=0.01)
    assert not check.ok and "no answer within" in check.detail.en and check.fix == errors.CheckTimedOut.default_fix


# -- 6. media ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "reach", "words"),
    [
        ({"livekit_mode": "cloud"}, "anywhere", "LiveKit Cloud"),
        ({"turn_url": "turns:turn.example:443"}, "anywhere", "TURN at turns:turn.example:443"),
        ({"forwards_media": True}, "anywhere", "forwarded to the ssh server"),
        ({"node_ip": "1.2.3.4"}, "anywhere", "public address 1.2.3.4"),  # a string only: nothing is sent
        ({"node_ip": "192.168.0.7"}, "same-network", "private address"),
        ({"node_ip": "100.64.1.2"}, "same-network", "cgnat address"),
        ({"node_ip": "127.0.0.1"}, "same-network", "loopback address"),
        ({}, "unknown", "not known"),
    ],
    ids=["cloud", "turn", "ssh-forward-media", "public-ip", "private", "cgnat", "loopback", "none"],
)
async def test_every_media_outcome(world: World, kw: dict[str, Any], reach: str, words: str) -> None:
    args: dict[str, Any] = {"livekit_mode": "local", "node_ip": "", "turn_url": "", "forwards_media": False, **kw}
    media = assess_media(**args)
    assert media.reach == reach and words in media.why.en and media.why.pt != media.why.en
    async with httpx.AsyncClient(transport=httpx.MockTransport(world.handler)) as client:
        result = await Ladder(client).run(_input(world.public, media=media))
    check = result.media_check()
    assert check is not None and check.required is False and check.ok is (reach == "anywhere")
    assert check.fix == (None if reach == "anywhere" else errors.MediaNotAnywhere.default_fix)
    assert result.ok  # media is informational: it never blocks a link


def test_turn_wins_over_a_private_node_ip_and_cloud_wins_over_all() -> None:
    private = {"node_ip": "192.168.0.7", "forwards_media": False}
    assert assess_media(livekit_mode="local", turn_url="turn:t:3478", **private).reach == "anywhere"
    assert assess_media(livekit_mode="cloud", turn_url="", **private).why.en.startswith("LiveKit Cloud")


async def test_stored_checks_keep_both_languages(world: World) -> None:
    world.validate_status = 401
    check = (await run(world, _input(world.public)))["livekit"]
    stored = check.to_stored()
    assert json.loads(json.dumps(stored))["detail"] == check.detail.to_json()
    assert check.to_json("pt-BR")["fix"] == errors.LivekitCheckFailed.default_fix.pt
