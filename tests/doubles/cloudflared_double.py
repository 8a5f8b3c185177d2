#!/usr/bin/env python3
"""A stand-in for the ``cloudflared`` binary: accepts its argv and serves its metrics server.

Imitates, from cloudflared's source and docs (``metrics/readiness.go``, ``component-tests/util.py``
in github.com/cloudflare/cloudflared, and https://developers.cloudflare.com/cloudflare-one/
connections/connect-networks/do-more-with-tunnels/trycloudflare/):

* ``cloudflared tunnel [--no-autoupdate] [--metrics HOST:PORT] --url URL`` — a quick tunnel;
* ``cloudflared tunnel [--no-autoupdate] [--metrics HOST:PORT] run [--token T]`` — a named tunnel,
  the token also read from the ``TUNNEL_TOKEN`` environment variable;
* on the metrics address: ``GET /ready`` → ``200 {"status": 200, "readyConnections": N,
  "connectorId": "..."}`` once connected, ``503`` with ``readyConnections: 0`` before;
  ``GET /quicktunnel`` → ``{"hostname": "<random>.trycloudflare.com"}`` (empty for named tunnels);
  ``GET /metrics`` → a Prometheus text line.

Control (all optional, environment variables):

* ``FAKE_CLOUDFLARED_CONTROL=<file>`` — a JSON file re-read on every request:
  ``{"hostname": "...", "ready": true|false, "exit": <code>}`` changes the quick tunnel's
  hostname, the readiness answer, or makes the process exit with that code (``exit`` is one-shot:
  the double removes it from the file when it obeys, so a restarted process keeps running);
* ``FAKE_CLOUDFLARED_READY_DELAY=<s>`` — ``/ready`` answers 503 for that long after start;
* ``FAKE_CLOUDFLARED_FAIL=<message>`` — print it as cloudflared's error line and exit 1;
* ``FAKE_CLOUDFLARED_RECORD=<file>`` — write ``{"argv": [...], "token_env": bool, "pid": N}`` there.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _log(level: str, msg: str) -> None:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{ts} {level} {msg}", file=sys.stderr, flush=True)


def _control(path: str) -> dict[str, Any]:
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text() or "{}")
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _take_exit(path: str) -> int | None:
    """The one-shot ``exit`` order from the control file, removed once read."""
    ctl = _control(path)
    if "exit" not in ctl:
        return None
    code = int(ctl.pop("exit"))
    Path(path).write_text(json.dumps(ctl))
    return code


def _flag(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "tunnel":
        print("usage: cloudflared tunnel [--metrics ADDR] (--url URL | run [--token T])", file=sys.stderr)
        return 2
    record = os.environ.get("FAKE_CLOUDFLARED_RECORD", "")
    named = "run" in argv[1:]
    token = _flag(argv, "--token") or os.environ.get("TUNNEL_TOKEN", "")
    if record:
        Path(record).write_text(json.dumps({"argv": argv, "token_env": bool(os.environ.get("TUNNEL_TOKEN")),
                                            "pid": os.getpid()}))
    fail = os.environ.get("FAKE_CLOUDFLARED_FAIL", "")
    if fail:
        _log("ERR", fail)
        return 1
    if named and not token:
        _log("ERR", '"cloudflared tunnel run" requires the ID or name of the tunnel to run as the last '
                    "command line argument or in the configuration file.")
        return 1
    url = _flag(argv, "--url") or ""
    if not named and not url:
        _log("ERR", "quick tunnels need --url")
        return 1
    metrics = _flag(argv, "--metrics") or "127.0.0.1:0"
    host, _, port_s = metrics.rpartition(":")
    control_path = os.environ.get("FAKE_CLOUDFLARED_CONTROL", "")
    ready_after = time.monotonic() + float(os.environ.get("FAKE_CLOUDFLARED_READY_DELAY", "0") or 0)
    state: dict[str, Any] = {
        "hostname": "" if named else f"{'-'.join(secrets.token_hex(3) for _ in range(3))}.trycloudflare.com",
        "connector": str(uuid.uuid4()),
    }
    stop = threading.Event()
    exit_code: list[int] = [0]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            ctl = _control(control_path)
            path = self.path.split("?", 1)[0]
            hostname = "" if named else str(ctl.get("hostname") or state["hostname"])
            ready = bool(ctl.get("ready", True)) and time.monotonic() >= ready_after
            if path == "/ready":
                status = 200 if ready else 503
                self._send(status, {"status": status, "readyConnections": 4 if ready else 0,
                                    "connectorId": state["connector"]})
            elif path == "/quicktunnel":
                self._send(200, {"hostname": hostname})
            elif path == "/metrics":
                body = b"cloudflared_tunnel_ha_connections 4\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    try:
        server = ThreadingHTTPServer((host or "127.0.0.1", int(port_s or 0)), Handler)
    except OSError as exc:
        _log("ERR", f"failed to bind metrics server on {metrics}: {exc}")
        return 1
    server.daemon_threads = True
    bound = f"{host or '127.0.0.1'}:{server.server_address[1]}"
    _log("INF", f"Starting metrics server on {bound}/metrics")
    if not named:
        _log("INF", "Requesting new quick Tunnel on trycloudflare.com...")
        _log("INF", "+--------------------------------------------------------------------------------------------+")
        _log("INF", "|  Your quick Tunnel has been created! Visit it at (it may take some time to be reachable):  |")
        _log("INF", f"|  https://{state['hostname']}  |")
        _log("INF", "+--------------------------------------------------------------------------------------------+")
    _log("INF", "Registered tunnel connection connIndex=0 event=0 ip=198.41.200.13 location=gru01 protocol=quic")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, lambda *_: stop.set())
    try:
        while not stop.wait(0.1):
            code = _take_exit(control_path)
            if code is not None:
                exit_code[0] = code
                break
    except KeyboardInterrupt:
        pass
    _log("INF", "Initiating graceful shutdown due to signal terminated ...")
    server.shutdown()
    server.server_close()
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
