#!/usr/bin/env python3
"""A stand-in for the ngrok agent's local API (and, run as a program, for ``ngrok http``).

Imitates, from ngrok's documentation (https://ngrok.com/docs/agent/api/ and the v3 agent's log
format):

* ``GET /api/endpoints`` → ``{"endpoints": [{"name", "uri", "url", "upstream": {"url", "protocol"}}],
  "uri": "/api/endpoints"}`` (agents 3.16+); with ``legacy=True`` it answers 404 like older agents.
* ``GET /api/tunnels`` → ``{"tunnels": [{"name", "uri", "public_url", "proto",
  "config": {"addr", "inspect"}}], "uri": "/api/tunnels"}``.
* ``GET /api/status`` → ``{"status": "online", "agent_version", "session", "uri"}``.

In-process (tests): ``AgentApi().start()``, then ``add(...)``, ``set_url(...)``, ``clear()``, ``stop()``.

As a program it accepts ngrok's argv (``http ADDR [--url URL] [--log stdout] [--log-format logfmt]
[--inspect=false]``), serves the API on a free port and prints the agent's two log lines
(``msg="starting web service" obj=web addr=...`` then ``msg="started tunnel" ... url=...``).
Environment knobs: ``FAKE_NGROK_FAIL=<code>`` prints ``ERR_NGROK_<code>`` as the agent does and exits 1;
``FAKE_NGROK_URL`` chooses the public URL; ``FAKE_NGROK_REQUIRE_TOKEN=1`` fails with ERR_NGROK_4018
unless ``NGROK_AUTHTOKEN`` is set.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeEndpoint:
    name: str
    url: str
    upstream: str  # e.g. "http://localhost:7801"

    def as_endpoint(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uri": f"/api/endpoints/{self.name}",
            "url": self.url,
            "upstream": {"url": self.upstream, "protocol": "http1"},
            "traffic_policy": "",
            "pooling_enabled": False,
        }

    def as_tunnel(self) -> dict[str, Any]:
        # The tunnels API shows addr without a scheme for http tunnels ("localhost:80").
        addr = self.upstream.split("://", 1)[-1]
        return {
            "name": self.name,
            "uri": f"/api/tunnels/{self.name}",
            "public_url": self.url,
            "proto": self.url.split("://", 1)[0],
            "config": {"addr": addr, "inspect": False},
            "metrics": {"conns": {"count": 0, "gauge": 0}, "http": {"count": 0}},
        }


class AgentApi:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, legacy: bool = False) -> None:
        self.legacy = legacy
        self.endpoints: list[FakeEndpoint] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                api.requests.append(self.path)
                path = self.path.split("?", 1)[0].rstrip("/")
                with api._lock:
                    if path == "/api/endpoints" and not api.legacy:
                        body: Any = {"endpoints": [e.as_endpoint() for e in api.endpoints], "uri": "/api/endpoints"}
                    elif path == "/api/tunnels":
                        body = {"tunnels": [e.as_tunnel() for e in api.endpoints], "uri": "/api/tunnels"}
                    elif path == "/api/status":
                        body = {"status": "online", "agent_version": "3.19.0", "session": {"legs": []},
                                "uri": "/api/status"}
                    else:
                        self._send(404, {"error_code": 100, "status_code": 404, "msg": "not found",
                                         "details": {"path": self.path}})
                        return
                self._send(200, body)

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> AgentApi:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def add(self, url: str, upstream: str, name: str | None = None) -> FakeEndpoint:
        ep = FakeEndpoint(name or f"ep{len(self.endpoints)}", url, upstream)
        with self._lock:
            self.endpoints.append(ep)
        return ep

    def set_url(self, name: str, url: str) -> None:
        with self._lock:
            for ep in self.endpoints:
                if ep.name == name:
                    ep.url = url

    def clear(self) -> None:
        with self._lock:
            self.endpoints.clear()


def _logfmt(lvl: str, msg: str, **fields: str) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    extra = " ".join(f"{k}={json.dumps(v) if ' ' in v else v}" for k, v in fields.items())
    return f'lvl={lvl} t={ts} msg="{msg}" {extra}'.rstrip()


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "http" or len(argv) < 2:
        print("usage: ngrok http ADDR [--url URL]", file=sys.stderr)
        return 2
    addr = argv[1]
    upstream = addr if "://" in addr else f"http://localhost:{addr.rsplit(':', 1)[-1]}"
    url = os.environ.get("FAKE_NGROK_URL") or f"https://{secrets.token_hex(4)}.ngrok-free.app"
    for i, arg in enumerate(argv):
        if arg in ("--url", "--domain") and i + 1 < len(argv):
            url = argv[i + 1] if "://" in argv[i + 1] else f"https://{argv[i + 1]}"
    fail = os.environ.get("FAKE_NGROK_FAIL", "")
    if os.environ.get("FAKE_NGROK_REQUIRE_TOKEN") == "1" and not os.environ.get("NGROK_AUTHTOKEN"):
        fail = "4018"
    api = AgentApi().start()
    print(_logfmt("info", "starting web service", obj="web", addr=f"127.0.0.1:{api.port}", allow_hosts="[]"),
          flush=True)
    if fail:
        print(_logfmt("eror", "session closing", obj="tunnels.session",
                      err=f"authentication failed: simulated failure\\n\\nERR_NGROK_{fail}"), flush=True)
        print(f"ERROR:  simulated failure\nERROR:  \nERROR:  ERR_NGROK_{fail}", flush=True)
        api.stop()
        return 1
    api.add(url, upstream, name="command_line")
    print(_logfmt("info", "started tunnel", obj="tunnels", name="command_line", addr=upstream, url=url),
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
