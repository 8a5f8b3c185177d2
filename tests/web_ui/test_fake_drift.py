"""The fake API cannot drift from the real one: checked against the real apps' routes (fast, in-process).

* every route the pages call (``fetch(`` / ``api(`` in ``web/static/*.js``) exists in the real admin or
  public app **and** in the fake;
* every route of the real admin app exists in the fake (except :data:`NOT_FOR_PAGES`, each with why),
  with the same query parameters (``?status=``, ``?component=``…);
* the fake's checks are the real ladder's (``app`` when there is an app, ``media`` always);
* statuses the pages must handle: 507 on a full disk, the session cookie only through the login URL.

To see it fail: delete ``@app.get("/api/logs")`` (or its handler) from ``tests/web_ui/fake_api.py`` and
run this file — ``test_every_page_call_is_served_by_the_real_app_and_the_fake`` and
``test_every_real_admin_route_is_in_the_fake`` name ``GET /api/logs``.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fake_api import FAKE_ADMIN_TOKEN, FAKE_SESSION, FakeStack, admin_app, public_app  # type: ignore[import-not-found]
from fastapi.routing import APIRoute
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from linkpronto import schema, verify
from linkpronto.web.assets import STATIC_DIR

#: Real admin routes no page calls, and why the fake does not need them.
NOT_FOR_PAGES = {
    ("POST", "/api/livekit/webhook"): "LiveKit's own signed POST, not a browser's",
}

_API_CALL = re.compile(r'\bapi\(\s*"(GET|POST|PUT|DELETE|PATCH)"\s*,\s*([`"])(.+?)\2')
_FETCH = re.compile(r'\bfetch\(\s*apiUrl\(\s*([`"])(.+?)\1\s*\)(.{0,200})', re.S)
_METHOD = re.compile(r'method:\s*"(GET|POST|PUT|DELETE|PATCH)"')


def page_calls() -> set[tuple[str, str, frozenset[str]]]:
    """``(method, path template, query names)`` for every literal API path the pages call."""
    calls: set[tuple[str, str, frozenset[str]]] = set()
    for js in sorted(STATIC_DIR.glob("*.js")):
        text = js.read_text("utf-8")
        found = [(m.group(1), m.group(3)) for m in _API_CALL.finditer(text)]
        for m in _FETCH.finditer(text):
            method = _METHOD.search(m.group(3))
            found.append((method.group(1) if method else "GET", m.group(2)))
        for method, raw in found:
            path, _, query = raw.partition("?")
            path = re.sub(r"\$\{[^}]+\}", "{}", path)
            if not path.startswith("/"):
                continue  # a variable's path (e.g. link.qr_svg_url): covered by the route it names
            names = frozenset(p.split("=", 1)[0] for p in query.split("&") if p)
            calls.add((method, path, names))
    return calls


def _routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, frozenset[str]]]:
    for r in routes:
        if isinstance(r, Mount):
            continue  # static files
        if isinstance(r, APIRoute):
            query = frozenset(p.alias for p in r.dependant.query_params)
            for method in sorted(r.methods - {"HEAD"}):
                yield method, prefix + r.path, query
        elif isinstance(r, Route):
            for method in sorted((r.methods or {"GET"}) - {"HEAD"}):
                yield method, prefix + r.path, frozenset()


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _match(method: str, path: str, routes: list[tuple[str, str, frozenset[str]]]) -> frozenset[str] | None:
    """The query parameters of the route serving ``method path`` (templates compared), else None."""
    for m, p, q in routes:
        if m == method and _template(p) == path and "{path" not in p:
            return q
    return None


@pytest.fixture(scope="module")
def real_routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[str, str, frozenset[str]]]]:
    from linkpronto.config import defaults
    from linkpronto.keys import load_or_create
    from linkpronto.links.store import LinkStore, sqlite_url
    from linkpronto.stack import Stack
    from linkpronto.web.admin import build_admin_app
    from linkpronto.web.public import PublicDeps, build_public_app

    tmp = tmp_path_factory.mktemp("real")
    store = LinkStore(sqlite_url(tmp))
    try:
        stack = Stack(defaults(tmp), load_or_create(tmp), store, admin_url="http://127.0.0.1:1")
        admin = build_admin_app(stack, port_getter=lambda: 1)
        public = build_public_app(PublicDeps(stack, None, None, lambda: None))
        inner = getattr(admin, "app", admin)  # AdminGuard wraps the FastAPI app
        # The public app is a dispatcher in front of its own Starlette app (``own``): take its routes.
        cells = [c.cell_contents for c in (getattr(public, "__closure__", None) or ())]
        own = next(c for c in cells if isinstance(c, Starlette))
        return {"admin": list(_routes(inner.routes)), "public": list(_routes(own.routes))}
    finally:
        store.close()


@pytest.fixture(scope="module")
def fake_routes() -> dict[str, list[tuple[str, str, frozenset[str]]]]:
    stack = FakeStack()
    return {"admin": list(_routes(admin_app(stack).routes)), "public": list(_routes(public_app(stack).routes))}


def test_the_pages_call_something() -> None:
    calls = page_calls()
    assert ("GET", "/api/logs", frozenset({"component", "n"})) in calls
    assert ("POST", "/_linkpronto/api/join", frozenset()) in calls
    assert len(calls) >= 8, calls


def test_every_page_call_is_served_by_the_real_app_and_the_fake(
    real_routes: dict[str, list[tuple[str, str, frozenset[str]]]],
    fake_routes: dict[str, list[tuple[str, str, frozenset[str]]]],
) -> None:
    missing_real, missing_fake = [], []
    for method, path, query in sorted(page_calls()):
        side = "public" if path.startswith("/_linkpronto/") else "admin"
        real = _match(method, path, real_routes[side])
        fake = _match(method, path, fake_routes[side])
        if real is None or not query <= real:
            missing_real.append(f"{method} {path} {sorted(query)}")
        if fake is None or not query <= fake:
            missing_fake.append(f"{method} {path} {sorted(query)}")
    assert missing_real == [], "the pages call what the real app does not serve"
    assert missing_fake == [], "the fake lacks what the pages call"


def test_every_real_admin_route_is_in_the_fake(
    real_routes: dict[str, list[tuple[str, str, frozenset[str]]]],
    fake_routes: dict[str, list[tuple[str, str, frozenset[str]]]],
) -> None:
    lacking = []
    for method, path, query in real_routes["admin"]:
        if (method, path) in NOT_FOR_PAGES:
            continue
        fake = _match(method, _template(path), fake_routes["admin"])
        if fake is None:
            lacking.append(f"{method} {path}")
        elif not query <= fake:
            lacking.append(f"{method} {path} ?{','.join(sorted(query - fake))}")
    assert lacking == []


def _ladder_rungs() -> set[str]:
    """The rung names verify.py reports: ``_timed("<name>"`` and ``Check("<name>"``."""
    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(verify))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_timed", "Check"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def test_the_fake_s_checks_are_the_real_ladder_s_app_and_media_included() -> None:
    real = _ladder_rungs()
    assert {"livekit", "app", "public_probe", "public_rtc", "link_route", "media"} <= real
    stack = FakeStack()
    stack.with_app = True
    checks = schema.Status.model_validate(stack.status()).verification.checks
    assert {c.name for c in checks} == real
    media = next(c for c in checks if c.name == "media")
    assert media.required is False and media.ok is False  # same-network by default: not required
    stack.with_app = False
    assert {c["name"] for c in stack.status()["verification"]["checks"]} == real - {"app"}


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, FakeStack]]:
    stack = FakeStack()
    stack.public_origin = "http://127.0.0.1:9"
    transport = httpx.ASGITransport(app=admin_app(stack))  # in-process ASGI, no server
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9") as c:
        yield c, stack


async def _login(c: httpx.AsyncClient) -> None:
    res = await c.get(f"/?token={FAKE_ADMIN_TOKEN}&lang=en", follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"] == "/?lang=en"
    assert c.cookies.get(FAKE_SESSION) == "ok"


async def test_the_session_cookie_comes_only_from_the_login_url(client: tuple[httpx.AsyncClient, FakeStack]) -> None:
    c, _ = client
    page = (await c.get("/"))
    assert page.status_code == 200 and "set-cookie" not in page.headers  # not with any page
    assert (await c.get("/api/status")).status_code == 401
    assert (await c.get("/?token=wrong", follow_redirects=False)).status_code == 401
    await _login(c)
    assert (await c.get("/api/status")).status_code == 200


async def test_status_filter_logs_stack_control_drop_in_and_507(client: tuple[httpx.AsyncClient, FakeStack]) -> None:
    c, stack = client
    await _login(c)
    origin = {"Origin": "http://127.0.0.1:9"}
    ready = await c.post("/api/consultation-links", json={"professional_id": "dra-ana"}, headers=origin)
    assert ready.status_code == 201
    await c.delete(f"/api/consultation-links/{ready.json()['id']}", headers=origin)
    await c.post("/api/consultation-links", json={"professional_id": "dra-bia"}, headers=origin)
    only = (await c.get("/api/consultation-links?status=revoked")).json()["items"]
    assert [i["professional_id"] for i in only] == ["dra-ana"]
    assert len((await c.get("/api/consultation-links?status=ready,revoked")).json()["items"]) == 2
    assert [i["professional_id"] for i in (await c.get("/api/consultation-links?professional_id=dra-bia")).json()["items"]] \
        == ["dra-bia"]

    stack.logs["app"] = ["ready on :3000", "GET / 200"]
    logs = (await c.get("/api/logs?component=app&n=1")).json()
    assert [x["line"] for x in logs["lines"]] == ["GET / 200"] and logs["last_seq"] == 2
    assert (await c.get("/api/logs?component=nope")).status_code == 422

    assert schema.Status.model_validate((await c.post("/api/stack/stop", headers=origin)).json()).state.value == "stopped"
    started = (await c.post("/api/stack/start", headers=origin))
    assert started.status_code == 202 and started.json()["state"] == "starting"
    assert (await c.post("/api/dashboard-login", headers=origin)).json()["url"].endswith(f"/?token={FAKE_ADMIN_TOKEN}")

    preparing = (await c.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"}, headers=origin))
    assert preparing.status_code == 202 and schema.DropInNotReady.model_validate(preparing.json())
    stack.state = "ready"
    done = (await c.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"}, headers=origin))
    assert done.status_code == 200 and schema.DropInReady.model_validate(done.json()).consultationUrl
    bad = (await c.post("/api/generate-consultation-token", json={}, headers=origin))
    assert bad.status_code == 400 and schema.DropInInvalid.model_validate(bad.json()).fields
    assert (await c.get("/api/generate-consultation-token")).status_code == 405

    stack.fail_with = {"code": "DISK_FULL", "message": "The disk is full.", "fix": "Free space."}
    full = (await c.post("/api/consultation-links", json={"professional_id": "dra-ana"}, headers=origin))
    assert full.status_code == 507 and full.json()["error"]["code"] == "DISK_FULL"


def test_a_route_removed_from_the_fake_fails_the_guard(
    real_routes: dict[str, list[tuple[str, str, frozenset[str]]]],
) -> None:
    """The guard itself: the fake without ``/api/logs`` is caught (a deliberately removed route)."""
    app = admin_app(FakeStack())
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", "") != "/api/logs"]
    routes = list(_routes(app.routes))
    assert _match("GET", "/api/logs", routes) is None
    lacking = [f"{m} {p}" for m, p, _ in real_routes["admin"]
               if (m, p) not in NOT_FOR_PAGES and _match(m, _template(p), routes) is None]
    assert lacking == ["GET /api/logs"]


def test_the_fake_lives_next_to_this_guard() -> None:
    assert (Path(__file__).parent / "fake_api.py").is_file()
