"""Measure the patient page: transfer size (HTML + JS + CSS, gzip) and time to first paint.

Usage::

    python bench/pages.py                 # serve the page locally (gzip on) and measure it
    python bench/pages.py --url URL       # measure a live patient link (e.g. from `linkpronto up`)
    python bench/pages.py --runs 7

Prints one JSON document. Headless Debian Chromium with fake camera/microphone, 390×844, cold
cache per run. "initial" counts what the page loads before anyone taps (HTML, CSS, our modules);
"with_livekit" adds the livekit-client bundle that the page prefetches when idle. Sizes are gzip
(level 6) of each response body, and also the bytes really received when the server compresses.
"""

from __future__ import annotations

import argparse
import gzip
import json
import secrets
import socket
import statistics
import threading
import time
from typing import Any

import uvicorn
from playwright.sync_api import Response, sync_playwright
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from linkpronto.paths import STATIC
from linkpronto.web.assets import STATIC_DIR, vendor_ready
from linkpronto.web.pages import patient_html

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
]
KINDS = {"document", "script", "stylesheet"}


def _local_server() -> tuple[str, uvicorn.Server, threading.Thread]:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(patient_html(state="ok", consultation_type="psicoterapia", lang="pt-BR"),
                            headers={"Cache-Control": "no-store"})

    async def config(request: Request) -> JSONResponse:
        return JSONResponse({"site_url": "", "livekit_url": ""})

    app = Starlette(routes=[
        Route("/c/{token}", page),
        Route("/_linkpronto/api/runtime-config", config),
        Mount(STATIC, StaticFiles(directory=STATIC_DIR)),
    ])
    app.add_middleware(GZipMiddleware, minimum_size=500)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("bench server did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}/c/{secrets.token_urlsafe(16)}", server, thread


def measure(url: str, runs: int) -> dict[str, Any]:
    fp: list[float] = []
    fcp: list[float] = []
    sizes: dict[str, dict[str, int]] = {}
    foreign: set[str] = set()
    origin = "/".join(url.split("/", 3)[:3])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for _ in range(runs):
                ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
                page = ctx.new_page()
                seen: list[Response] = []
                page.on("response", lambda r, bucket=seen: bucket.append(r))
                page.on("request", lambda r: foreign.add(r.url) if not r.url.startswith((origin, "data:")) else None)
                page.goto(url, wait_until="load")
                page.wait_for_function("() => !!window.LivekitClient", timeout=15000)
                paint = page.evaluate(
                    "() => Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))"
                )
                fp.append(paint.get("first-paint", float("nan")))
                fcp.append(paint.get("first-contentful-paint", float("nan")))
                for r in seen:
                    if r.request.resource_type not in KINDS or r.status != 200:
                        continue
                    name = r.url.split("?")[0].replace(origin, "")
                    body = r.body()
                    wire = r.request.sizes()["responseBodySize"]
                    sizes[name] = {"raw": len(body), "gzip": len(gzip.compress(body, 6)), "wire": wire}
                ctx.close()
        finally:
            browser.close()
    lk = {k: v for k, v in sizes.items() if "vendor/" in k}
    own = {k: v for k, v in sizes.items() if k not in lk}

    def total(d: dict[str, dict[str, int]], key: str) -> int:
        return sum(v[key] for v in d.values())

    return {
        "url": url,
        "runs": runs,
        "first_paint_ms": {"median": round(statistics.median(fp), 1), "max": round(max(fp), 1)},
        "first_contentful_paint_ms": {"median": round(statistics.median(fcp), 1), "max": round(max(fcp), 1)},
        "transfer_initial": {"gzip_bytes": total(own, "gzip"), "raw_bytes": total(own, "raw"),
                             "wire_bytes": total(own, "wire")},
        "transfer_with_livekit": {"gzip_bytes": total(sizes, "gzip"), "raw_bytes": total(sizes, "raw"),
                                  "wire_bytes": total(sizes, "wire")},
        "files": sizes,
        "foreign_requests": sorted(foreign),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a live patient link; default: serve one locally")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not vendor_ready():
        raise SystemExit("livekit-client is not vendored: run npm install && python -m linkpronto.web.assets")
    if args.url:
        print(json.dumps(measure(args.url, args.runs), indent=2))
        return
    url, server, thread = _local_server()
    try:
        print(json.dumps(measure(url, args.runs), indent=2))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
