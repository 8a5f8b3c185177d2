"""What the conformance suite drives: the double or the real livekit-server, with the same config,
a webhook receiver, and a signalling-only WebSocket client speaking livekit-protocol's protobufs.

Both targets get one config (``conformance_config``): strict keys only, ``room.auto_create: false``
(a real external LiveKit configured that way), a webhook to our receiver, ``rtc.node_ip`` and
``rtc.stun_servers`` on the target's own address. The real server runs inside a namespace of ours
(198.18.150.0/24, this suite's own range); the double on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from livekit.api import AccessToken, VideoGrants
from livekit.protocol import rtc

from helpers.lp import TEST_KEY, TEST_SECRET
from helpers.net import free_port

NET = "198.18.150.0/24"
LK_IP = "198.18.150.2"
ROOT_IP = "198.18.150.254"


@dataclass
class Hook:
    auth: str
    body: bytes
    at: float

    @property
    def event(self) -> str:
        return str(json.loads(self.body).get("event", ""))

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class WebhookReceiver:
    """An HTTP server that records every webhook POST (answers 200)."""

    bind: str
    hooks: list[Hook] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.hooks.append(Hook(self.headers.get("authorization", ""), body, time.monotonic()))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((self.bind, 0), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True, name="webhooks").start()

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}/hook"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self, room: str, identity: str | None = None) -> list[str]:
        out = []
        for h in list(self.hooks):
            data = h.json()
            if data.get("room", {}).get("name") != room:
                continue
            if identity is not None and data.get("participant", {}).get("identity") not in (None, identity):
                continue
            out.append(h.event)
        return out

    def wait_for(self, room: str, event: str, timeout_s: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if event in self.events(room):
                return self.events(room)
            time.sleep(0.1)
        raise TimeoutError(f"no {event} for {room} in {timeout_s} s; got {self.events(room)}")


def conformance_config(ip: str, port: int, webhook_url: str) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": [ip],
        "rtc": {"tcp_port": free_port(), "udp_port": free_port(), "use_external_ip": False,
                "node_ip": ip, "stun_servers": [f"{ip}:3478"]},
        "keys": {TEST_KEY: TEST_SECRET},
        "room": {"auto_create": False, "departure_timeout": 1, "empty_timeout": 30},
        "webhook": {"api_key": TEST_KEY, "urls": [webhook_url]},
        "logging": {"level": "info"},
    }


@dataclass
class Target:
    """One LiveKit under test: ``kind`` is ``double`` or ``real``."""

    kind: str
    url: str
    hooks: WebhookReceiver
    config: dict[str, Any]
    host_argv: Any = None  # Host.argv of the namespace the target runs in (real), else None
    log_tail: Any = None
    topo: Any = None  # real: the Topology (add client hosts on ``lan``)
    lan: Any = None

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def token(self, room: str, identity: str, *, ttl_s: int = 600, **grants: Any) -> str:
        video = VideoGrants(room_join=True, room=room, **grants)
        return (AccessToken(TEST_KEY, TEST_SECRET).with_identity(identity).with_name(identity)
                .with_grants(video).with_ttl(__import__("datetime").timedelta(seconds=ttl_s)).to_jwt())

    def admin_token(self, room: str = "") -> str:
        video = VideoGrants(room_list=True, room_create=True, room_admin=True, room=room)
        return AccessToken(TEST_KEY, TEST_SECRET).with_grants(video).to_jwt()


def join_request_param(token_attrs: dict[str, str] | None = None, *, reconnect_sid: str = "") -> str:
    """The ``join_request`` query value livekit-client 2.23 sends on ``/rtc/v1``: base64url of a
    ``WrappedJoinRequest`` (no compression) around a ``JoinRequest``."""
    join = rtc.JoinRequest()
    join.client_info.sdk = join.client_info.JS  # type: ignore[assignment]
    join.client_info.protocol = 17
    join.client_info.version = "2.23.0"
    join.connection_settings.auto_subscribe = True
    if reconnect_sid:
        join.reconnect = True
        join.participant_sid = reconnect_sid
    wrapped = rtc.WrappedJoinRequest(join_request=join.SerializeToString())
    return base64.urlsafe_b64encode(wrapped.SerializeToString()).decode("ascii")


def signal_url(target: Target, token: str, *, v1: bool, reconnect_sid: str = "") -> str:
    if v1:
        return (f"{target.ws_url}/rtc/v1?access_token={token}"
                f"&join_request={join_request_param(reconnect_sid=reconnect_sid)}")
    extra = f"&reconnect=1&sid={reconnect_sid}" if reconnect_sid else ""
    return f"{target.ws_url}/rtc?access_token={token}&protocol=16&sdk=js&version=2.23.0&auto_subscribe=1{extra}"


async def first_response(ws: Any, kind: str = "join", timeout_s: float = 10.0) -> rtc.SignalResponse:
    """The first ``SignalResponse`` of ``kind`` on ``ws`` (others — e.g. ``offer`` — are skipped)."""
    import asyncio

    async def read() -> rtc.SignalResponse:
        while True:
            data = await ws.recv()
            res = rtc.SignalResponse()
            res.ParseFromString(data)
            if res.WhichOneof("message") == kind:
                return res

    return await asyncio.wait_for(read(), timeout_s)


def twirp(target: Target, method: str, body: dict[str, Any], token: str | None = None) -> httpx.Response:
    return httpx.post(f"{target.url}/twirp/livekit.RoomService/{method}", json=body, timeout=10,
                      headers={"Authorization": f"Bearer {token or target.admin_token(body.get('room', ''))}"})


@contextlib.contextmanager
def double_target() -> Iterator[Target]:
    from doubles.livekit_server import run_double

    hooks = WebhookReceiver("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="lp-lkconf-") as tmp:
        config = conformance_config("127.0.0.1", free_port(), hooks.url)
        path = Path(tmp) / "livekit.yaml"
        path.write_text(json.dumps(config))
        try:
            with run_double({}, port=config["port"], extra_args=["--config", str(path)]) as double:
                yield Target("double", double.url, hooks, config,
                             log_tail=lambda: "\n".join(double.output))
        finally:
            hooks.close()


@contextlib.contextmanager
def real_target() -> Iterator[Target]:
    from fixtures.livekit_real import RealLivekit
    from fixtures.netns import Topology

    with Topology("lkc") as topo:
        lan = topo.network("lan", NET)
        host = topo.host("lk")
        topo.attach(host, lan, LK_IP, default=True)
        topo.link_root(lan, ROOT_IP)
        hooks = WebhookReceiver(ROOT_IP)
        config = conformance_config(LK_IP, free_port(), hooks.url)
        lk = RealLivekit({TEST_KEY: TEST_SECRET}, host=host, ip=LK_IP, config=config)
        try:
            with lk:
                yield Target("real", lk.url, hooks, config, host_argv=host.argv, log_tail=lk.log_tail,
                             topo=topo, lan=lan)
        finally:
            hooks.close()
