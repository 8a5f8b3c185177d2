"""A test double of livekit-server: it imitates livekit-server's HTTP surface, written from LiveKit's
documentation (docs.livekit.io: self-hosting config and flags, the signalling connection, the Twirp
RoomService API and its access-token grants). It is a test double, not LiveKit: there is no media and
no WebRTC, and nothing is persisted.

Imitated:
- ``GET /`` answers ``OK`` (the health check).
- ``GET /rtc/validate`` and ``/rtc/v1/validate`` answer ``success`` when the access token (query
  ``access_token`` or ``Authorization: Bearer``) is HS256-signed by one of the keys (``iss`` = API key),
  is within its validity (60 s leeway, like the server's JWT library) and grants ``video.roomJoin`` with
  a room; otherwise 401 (400 for an empty identity) with the reason as plain text.
- WebSocket ``/rtc`` and ``/rtc/v1`` (livekit-client 2.17+): the same checks, refused with an HTTP error
  before the upgrade; once accepted, a binary ``SignalResponse{join}``, ``pong``/``pong_resp`` answers to
  pings, and the participant is registered until the socket closes.

Held to the real livekit-server v1.13.5 by tests/livekit_conformance (the same tests run against both):
protocol 17; ``/rtc/v1`` (and its validate) need ``join_request`` (400 after a bad signature's 401);
``room.auto_create: false`` makes an unknown room 404 ("requested room does not exist"); the join
hands ``rtc.stun_servers`` as ICE servers (none when unset — the real server would hand Google's);
a participant is ``JOINED`` until *active* (the real server: ICE done; the double: the client's first
offer/answer, or ``lp_active=1``), and only then ``participant_joined`` and a ListRooms count; one that
closes before that gives ``participant_connection_aborted``; a config with an unknown field is refused
at start; ``reconnect=1&sid=`` (``/rtc``) or a ``join_request`` with ``reconnect`` (``/rtc/v1``) for
an identity the room does not hold is answered with a ``leave`` (``STATE_MISMATCH``, action
``RECONNECT``) and closed, as the real server does. Resumption: an *active* participant whose
signalling WebSocket closes without a client ``leave`` is kept (the real server keeps it while its
peer connection lives; the double, with none, for ``resume_window`` seconds — ``--resume-window``,
default 0 = off, so tests written for the old double keep their timing) and a reconnect within that time resumes it: same sid, a ``SignalResponse{reconnect}``,
no new ``participant_joined``; past the window it leaves. A client ``leave`` (what livekit-client's
``disconnect()`` sends) or a never-active participant leaves at once. ``add_track`` gives a
``track_published`` answer and, once the participant is active, a ``track_published`` webhook; on
leaving, ``track_unpublished`` for each track comes before ``participant_left`` (v1.13.5's order).
Not imitated: media.
- Twirp ``POST /twirp/livekit.RoomService/{CreateRoom,ListRooms,DeleteRoom,ListParticipants,
  GetParticipant,RemoveParticipant}`` in ``application/protobuf`` or ``application/json``, with the
  grants livekit-server checks (roomList; roomCreate for CreateRoom/DeleteRoom; roomAdmin on that room
  for the others). Removed participants get a ``leave`` and a close 1000. Rooms live until deleted.

- Webhooks (docs.livekit.io "Webhooks"): with a config ``webhook: {api_key: KEY, urls: [...]}``, every
  ``room_started``, ``participant_joined``, ``participant_left`` and ``room_finished`` is POSTed to each
  URL as a JSON ``WebhookEvent`` (protojson: camelCase names, ``createdAt`` in UNIX seconds as a
  string, an ``EV_…`` id) with ``Content-Type: application/webhook+json`` and ``Authorization: <JWT>``:
  HS256 with KEY's secret, ``iss`` = KEY, valid 5 minutes, claim ``sha256`` = base64 SHA-256 of the
  body. Deliveries to one URL are queued in order and retried on failure (network error or non-2xx)
  with growing waits, as livekit-server does. A participant joins when its signalling WebSocket is
  accepted and leaves when it closes or is removed; a room starts with its first participant (or
  CreateRoom) and finishes ``room.departure_timeout`` seconds (config, default 20) after its last
  participant left, or at once on DeleteRoom.

Fault injection (test-only): ``POST /_double/webhook_faults`` with ``{"drop": {KIND: N}, "reorder":
{KIND: N}}`` drops the next N webhooks of that kind (logged with ``status: "dropped"``), or holds the
next N of that kind back and delivers each right after the event that follows it (or after 2 s),
so a receiver sees them out of order; ``{}`` clears. ``RunningDouble.webhook_faults(...)`` posts it.

Test-only extras: ``GET /_double/state``, ``POST /_double/reset``, and ``lp_echo=1`` on a WebSocket URL
(no token needed): every frame is echoed, the client's close code is returned, and a text frame
``lp_close:CODE[:REASON]`` makes the double close with that code.

Run: ``python tests/doubles/livekit_server.py [--config FILE.yaml] [--port N] [--bind ADDR] [--keys "K: S"]``
(``--port 0`` picks a free port; it is printed in the ``starting LiveKit server`` line). Default bind is
127.0.0.1 (livekit-server binds every interface). In tests use :func:`run_double`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import jwt
import uvicorn
import yaml
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit.api import AccessToken
from livekit.protocol import models, rtc
from livekit.protocol import room as room_pb
from livekit.protocol import webhook as webhook_pb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SERVER_VERSION = "1.13.5"
PROTOCOL_VERSION = 17  # livekit-server 1.13.5 (and the vendored livekit-client 2.23) speak 17
JWT_LEEWAY_S = 60  # go-jose's DefaultLeeway, which livekit-server's token verification uses
PING_INTERVAL_S, PING_TIMEOUT_S = 5, 15
WEBHOOK_TOKEN_TTL = datetime.timedelta(minutes=5)  # livekit-server signs webhooks for 5 minutes
WEBHOOK_RETRIES = 6
WEBHOOK_RETRY_S = 0.2  # doubled after each failed attempt
DEFAULT_DEPARTURE_TIMEOUT_S = 20.0
DEFAULT_RESUME_WINDOW_S = 0.0  # (0: off, the old behaviour; --resume-window S to turn on) how long an active participant whose signalling closed stays resumable
REORDER_HOLD_S = 2.0  # a held-back webhook goes out after the next event, or after this long
DEFAULT_PORT = 7880
START_MARKER = "starting LiveKit server"
CORS = {"Access-Control-Allow-Origin": "*"}
# Sending on a socket the peer already closed: Starlette raises RuntimeError, uvicorn an OSError.
_SEND_ERRORS = (RuntimeError, OSError, WebSocketDisconnect)


# The config fields the double knows, as livekit-server's config structs name them (v1.13.5). The real
# server decodes its YAML strictly: an unknown field stops it at start. ``None`` = a leaf or a map
# whose keys are free (``keys``); a dict = a struct whose fields are checked too.
KNOWN_CONFIG: dict[str, Any] = {
    "port": None, "bind_addresses": None, "prometheus_port": None, "prometheus": None,
    "key_file": None, "keys": None, "region": None, "development": None, "redis": None,
    "rtc": {"udp_port": None, "tcp_port": None, "port_range_start": None, "port_range_end": None,
            "use_external_ip": None, "node_ip": None, "stun_servers": None, "turn_servers": None,
            "use_ice_lite": None, "enable_loopback_candidate": None, "ips": None, "interfaces": None,
            "congestion_control": None, "allow_tcp_fallback": None, "packet_buffer_size": None},
    "room": {"auto_create": None, "enabled_codecs": None, "max_participants": None,
             "empty_timeout": None, "departure_timeout": None, "enable_remote_unmute": None,
             "max_metadata_size": None, "playout_delay": None, "sync_streams": None},
    "turn": None, "webhook": {"api_key": None, "urls": None, "url_not_found_log_level": None},
    "logging": {"level": None, "json": None, "sample": None, "pion_level": None,
                "component_levels": None},
    "limit": None, "node_selector": None, "signal_relay": None, "psrpc": None, "audio": None,
    "video": None, "ingress": None, "sip": None, "metric": None,
}


def config_errors(conf: Mapping[str, Any], known: Mapping[str, Any] = KNOWN_CONFIG, at: str = "") -> list[str]:
    """Unknown fields of ``conf`` (``rtc.node_ipp``…), which livekit-server refuses at start."""
    errors = []
    for key, value in conf.items():
        if key not in known:
            errors.append(f"field {key} not found in type config.{at or 'Config'}")
        elif isinstance(known[key], dict) and isinstance(value, Mapping):
            errors += config_errors(value, known[key], key)
    return errors


class Refusal(Exception):
    """A request livekit-server would refuse: HTTP status, plain message, Twirp code."""

    def __init__(self, status: int, message: str, code: str = "unauthenticated") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _sid(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")


def _now_ms() -> int:
    return int(time.time() * 1000)


def token_from(headers: Mapping[str, str], query: Mapping[str, str]) -> str:
    auth = headers.get("authorization", "")
    if auth:
        if not auth.startswith("Bearer "):
            raise Refusal(401, "invalid authorization header. Must start with Bearer ")
        return auth[len("Bearer ") :]
    token = query.get("access_token", "")
    if not token:
        raise Refusal(401, "permissions denied")
    return token


def verify_token(keys: Mapping[str, str], token: str) -> dict[str, Any]:
    """Claims of a token signed by one of ``keys`` (``iss`` names the key), or Refusal(401)."""
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise Refusal(401, "invalid authorization token") from exc
    api_key = unverified.get("iss")
    secret = keys.get(api_key) if isinstance(api_key, str) else None
    if secret is None:
        raise Refusal(401, f"invalid API key: {api_key}")
    try:
        claims: dict[str, Any] = jwt.decode(token, secret, algorithms=["HS256"], leeway=JWT_LEEWAY_S)
    except jwt.InvalidTokenError as exc:
        raise Refusal(401, f"invalid token: {exc}") from exc
    return claims


@dataclasses.dataclass(eq=False)
class Participant:
    sid: str
    room: str
    identity: str
    name: str
    joined_at: int
    websocket: WebSocket | None = None
    attributes: dict[str, str] = dataclasses.field(default_factory=dict)
    gone: bool = False  # participant_left already sent
    # livekit-server makes a participant ACTIVE once its peer connection is up (ICE done); only then
    # participant_joined. The double has no WebRTC: it takes the client's first SDP (an offer or an
    # answer) for that moment, or ``lp_active=1`` on the URL (test-only).
    active: bool = False
    left_by_client: bool = False  # it sent a SignalRequest{leave} (livekit-client's disconnect())
    tracks: list[models.TrackInfo] = dataclasses.field(default_factory=list)
    expiry: asyncio.TimerHandle | None = None  # kept for resumption after its signalling closed

    def info(self) -> models.ParticipantInfo:
        state = models.ParticipantInfo.ACTIVE if self.active else models.ParticipantInfo.JOINED
        return models.ParticipantInfo(
            sid=self.sid, identity=self.identity, name=self.name, joined_at=self.joined_at,
            state=state, attributes=self.attributes, tracks=self.tracks,
        )


def sign_webhook(api_key: str, api_secret: str, body: bytes) -> str:
    """The ``Authorization`` value livekit-server sends with a webhook body."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
    return AccessToken(api_key, api_secret).with_ttl(WEBHOOK_TOKEN_TTL).with_sha256(digest).to_jwt()


class WebhookSender:
    """livekit-server's webhook notifier for one URL: an ordered queue, retried deliveries."""

    def __init__(self, url: str, api_key: str, api_secret: str, log: list[dict[str, Any]]) -> None:
        self.url, self.api_key, self.api_secret, self.log = url, api_key, api_secret, log
        self.queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def send(self, event_id: str, kind: str, body: bytes) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"webhook {self.url}")
        self.queue.put_nowait((event_id, kind, body))

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                event_id, kind, body = await self.queue.get()
                entry: dict[str, Any] = {"url": self.url, "id": event_id, "event": kind, "attempts": 0,
                                         "status": None, "error": None}
                self.log.append(entry)
                delay = WEBHOOK_RETRY_S
                for _ in range(WEBHOOK_RETRIES):
                    entry["attempts"] += 1
                    headers = {"Content-Type": "application/webhook+json",
                               "Authorization": sign_webhook(self.api_key, self.api_secret, body)}
                    try:
                        res = await client.post(self.url, content=body, headers=headers)
                        entry["status"] = res.status_code
                        if 200 <= res.status_code < 300:
                            break
                    except httpx.HTTPError as exc:
                        entry["error"] = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(delay)
                    delay *= 2


class LiveKitDouble:
    """The double's whole state and its ASGI app (``.app``). One per server; no globals."""

    def __init__(self, keys: Mapping[str, str], conf: Mapping[str, Any] | None = None, *,
                 resume_window: float = DEFAULT_RESUME_WINDOW_S) -> None:
        self.keys = dict(keys)
        self.resume_window = resume_window
        self.webhook_faults: dict[str, dict[str, int]] = {"drop": {}, "reorder": {}}
        self._held: list[tuple[str, str, bytes, asyncio.TimerHandle]] = []
        conf = conf or {}
        hook = conf.get("webhook") or {}
        self.webhook_key = str(hook.get("api_key") or "")
        self.webhook_urls = [str(u) for u in hook.get("urls") or []]
        if self.webhook_urls and self.webhook_key not in self.keys:
            raise SystemExit("webhook.api_key must be one of the configured keys")
        room_conf = conf.get("room") or {}
        self.auto_create = bool(room_conf.get("auto_create", True))
        rtc_conf = conf.get("rtc") or {}
        # livekit-server hands clients rtc.stun_servers (Google's public ones when unset: the double
        # hands none then, so no test client ever tries to reach the internet).
        self.stun_servers = [str(s) for s in rtc_conf.get("stun_servers") or []]
        self.departure_timeout = float(room_conf.get("departure_timeout", DEFAULT_DEPARTURE_TIMEOUT_S))
        self.webhook_log: list[dict[str, Any]] = []
        self._senders: dict[str, WebhookSender] = {}
        self._finishers: dict[str, asyncio.TimerHandle] = {}
        self.node_id = _sid("ND_")
        self.rooms: dict[str, models.Room] = {}
        self.participants: dict[str, Participant] = {}  # by sid
        self.calls: list[dict[str, Any]] = []
        self.validate_calls = 0
        self.ws_connections = 0
        self.ws_requests: deque[dict[str, Any]] = deque(maxlen=100)
        self.app = Starlette(routes=[
            Route("/", self.health),
            Route("/rtc/validate", self.validate),
            Route("/rtc/v1/validate", self.validate),
            WebSocketRoute("/rtc", self.signal),
            WebSocketRoute("/rtc/v1", self.signal),
            Route("/twirp/livekit.RoomService/{method}", self.twirp, methods=["POST"]),
            Route("/_double/state", self.state),
            Route("/_double/reset", self.reset, methods=["POST"]),
            Route("/_double/webhook_faults", self.set_webhook_faults, methods=["POST"]),
        ])
        self.app.state.double = self

    def snapshot(self) -> dict[str, Any]:
        return {
            "participants": [
                {"room": p.room, "identity": p.identity, "name": p.name, "sid": p.sid}
                for p in self.participants.values()
            ],
            "rooms": sorted(self.rooms),
            "calls": list(self.calls),
            "ws_connections": self.ws_connections,
            "ws_open": sum(1 for p in self.participants.values() if p.websocket is not None),
            "ws_requests": list(self.ws_requests),
            "validate_calls": self.validate_calls,
            "webhooks": list(self.webhook_log),
        }

    # --- HTTP ------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return PlainTextResponse("OK")

    async def state(self, request: Request) -> Response:
        return JSONResponse(self.snapshot())

    async def set_webhook_faults(self, request: Request) -> Response:
        body = await request.json()
        self.webhook_faults = {k: {str(e): int(n) for e, n in (body.get(k) or {}).items()} for k in ("drop", "reorder")}
        return JSONResponse(self.webhook_faults)

    async def reset(self, request: Request) -> Response:
        self.calls.clear()
        self.ws_requests.clear()
        self.validate_calls = self.ws_connections = 0
        self.webhook_log.clear()
        self.webhook_faults = {"drop": {}, "reorder": {}}
        return JSONResponse(self.snapshot())

    def join_claims(
        self, headers: Mapping[str, str], query: Mapping[str, str], path: str = "/rtc"
    ) -> tuple[str, str, str, dict[str, str]]:
        """(room, identity, name, attributes) for a join, with livekit-server's checks."""
        claims = verify_token(self.keys, token_from(headers, query))
        # livekit-server 1.13.5: signature first, then v1's join_request (livekit-client 2.23 always sends
        # it), then the grants
        if path.startswith("/rtc/v1") and not query.get("join_request"):
            raise Refusal(400, "join_request is required")
        video = claims.get("video")
        if not isinstance(video, dict) or not video.get("roomJoin"):
            raise Refusal(401, "permissions denied")
        identity = str(claims.get("sub") or "")
        if not identity:
            raise Refusal(400, "participant identity cannot be empty")
        room = str(video.get("room") or query.get("room") or "")
        if not room:
            raise Refusal(401, "permissions denied: no room in token")
        if not self.auto_create and room not in self.rooms:
            raise Refusal(404, "requested room does not exist")
        attributes = claims.get("attributes")
        attrs = {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        return room, identity, str(claims.get("name") or ""), attrs

    async def validate(self, request: Request) -> Response:
        self.validate_calls += 1
        try:
            self.join_claims(request.headers, request.query_params, request.url.path)
        except Refusal as refusal:
            return PlainTextResponse(refusal.message, status_code=refusal.status, headers=CORS)
        return PlainTextResponse("success", headers=CORS)

    # --- signalling WebSocket --------------------------------------------------------------------
    async def signal(self, ws: WebSocket) -> None:
        self.ws_requests.append({"path": ws.url.path, "query": dict(ws.query_params)})
        if ws.query_params.get("lp_echo") == "1":
            await self._echo(ws)
            return
        try:
            room, identity, name, attributes = self.join_claims(ws.headers, ws.query_params, ws.url.path)
        except Refusal as refusal:
            await ws.send_denial_response(PlainTextResponse(refusal.message, status_code=refusal.status))
            return
        await ws.accept()
        self.ws_connections += 1
        held = [p for p in self.participants.values() if (p.room, p.identity) == (room, identity)]
        if _wants_reconnect(ws.query_params, ws.url.path):
            if held:
                await self._resume(ws, held[0])
                return
            # livekit-server: "trying to reconnect without keep subscribe state but missing from the room";
            # v1.13.5 says so with ``action`` alone (the deprecated ``can_reconnect`` stays false) —
            # checked by the conformance suite
            leave = rtc.LeaveRequest(reason=models.DisconnectReason.STATE_MISMATCH,  # type: ignore[arg-type]
                                     action=rtc.LeaveRequest.RECONNECT)
            with contextlib.suppress(*_SEND_ERRORS):
                await ws.send_bytes(rtc.SignalResponse(leave=leave).SerializeToString())
                await ws.close(1000)
            return
        for old in held:
            await self._kick(old, models.DisconnectReason.DUPLICATE_IDENTITY)
        room_info = self._room(room)
        me = Participant(_sid("PA_"), room, identity, name, int(time.time()), ws, attributes)
        others = [p.info() for p in self.participants.values() if p.room == room]
        self.participants[me.sid] = me
        self._room_joined(me)
        if ws.query_params.get("lp_active") == "1":
            self._activate(me)
        join = rtc.JoinResponse(
            room=room_info, participant=me.info(), other_participants=others,
            server_version=SERVER_VERSION, subscriber_primary=True,
            ice_servers=[rtc.ICEServer(urls=[f"stun:{s}" for s in self.stun_servers])] if self.stun_servers else [],
            ping_interval=PING_INTERVAL_S, ping_timeout=PING_TIMEOUT_S,
            server_info=models.ServerInfo(
                edition=models.ServerInfo.Standard, version=SERVER_VERSION,
                protocol=PROTOCOL_VERSION, node_id=self.node_id,
            ),
        )
        join.room.num_participants = len(others) + 1
        await self._session(ws, me, rtc.SignalResponse(join=join))

    async def _resume(self, ws: WebSocket, me: Participant) -> None:
        """``reconnect`` for a participant the room still holds: same sid, a ``reconnect`` answer."""
        if me.expiry is not None:
            me.expiry.cancel()
            me.expiry = None
        old, me.websocket = me.websocket, ws
        if old is not None:
            with contextlib.suppress(*_SEND_ERRORS):
                await old.close(1000)
        res = rtc.ReconnectResponse(
            ice_servers=[rtc.ICEServer(urls=[f"stun:{s}" for s in self.stun_servers])] if self.stun_servers else [])
        await self._session(ws, me, rtc.SignalResponse(reconnect=res))

    async def _session(self, ws: WebSocket, me: Participant, first: rtc.SignalResponse) -> None:
        try:
            await ws.send_bytes(first.SerializeToString())
            while (message := await ws.receive())["type"] != "websocket.disconnect":
                if message.get("bytes"):
                    await self._answer(ws, message["bytes"], me)
        except _SEND_ERRORS:
            pass  # the peer went away (or the double closed it); what happens to `me` is decided below
        finally:
            self._signal_closed(ws, me)

    def _signal_closed(self, ws: WebSocket, me: Participant) -> None:
        if me.gone or me.websocket is not ws:
            return  # removed already, or resumed on another socket
        me.websocket = None
        if me.active and not me.left_by_client and self.resume_window > 0:
            # livekit-server keeps an active participant (its media is up) for a resume
            me.expiry = asyncio.get_running_loop().call_later(self.resume_window, self._expire, me)
            return
        self._expire(me)

    def _expire(self, me: Participant) -> None:
        me.expiry = None
        if me.websocket is None:
            self.participants.pop(me.sid, None)
            self._left(me)

    async def _answer(self, ws: WebSocket, data: bytes, me: Participant) -> None:
        request = rtc.SignalRequest()
        try:
            request.ParseFromString(data)
        except DecodeError:
            return
        kind = request.WhichOneof("message")
        if kind in ("offer", "answer"):
            self._activate(me)
        elif kind == "leave":
            me.left_by_client = True
        elif kind == "add_track":
            add = request.add_track
            track = models.TrackInfo(sid=_sid("TR_"), name=add.name, type=add.type, source=add.source,
                                     width=add.width, height=add.height, muted=add.muted)
            me.tracks.append(track)
            await ws.send_bytes(rtc.SignalResponse(track_published=rtc.TrackPublishedResponse(
                cid=add.cid, track=track)).SerializeToString())
            if me.active:
                self._webhook("track_published", self._room(me.room), me, track)
        if kind == "ping":
            await ws.send_bytes(rtc.SignalResponse(pong=_now_ms()).SerializeToString())
        elif kind == "ping_req":
            pong = rtc.Pong(last_ping_timestamp=request.ping_req.timestamp, timestamp=_now_ms())
            await ws.send_bytes(rtc.SignalResponse(pong_resp=pong).SerializeToString())

    async def _echo(self, ws: WebSocket) -> None:
        await ws.accept()
        self.ws_connections += 1
        with contextlib.suppress(*_SEND_ERRORS):
            while (message := await ws.receive())["type"] != "websocket.disconnect":
                text = message.get("text")
                if text is not None and text.startswith("lp_close:"):
                    code, _, reason = text[len("lp_close:") :].partition(":")
                    await ws.close(int(code), reason)
                    return
                if text is not None:
                    await ws.send_text(text)
                else:
                    await ws.send_bytes(message.get("bytes") or b"")

    async def _kick(self, participant: Participant, reason: int) -> None:
        """What livekit-server does on removal: a ``leave``, then close 1000."""
        if participant.expiry is not None:
            participant.expiry.cancel()
            participant.expiry = None
        self.participants.pop(participant.sid, None)
        self._left(participant)
        ws, participant.websocket = participant.websocket, None
        if ws is None:
            return
        leave = rtc.LeaveRequest(can_reconnect=False, reason=reason, action=rtc.LeaveRequest.DISCONNECT)  # type: ignore[arg-type]
        with contextlib.suppress(*_SEND_ERRORS):
            await ws.send_bytes(rtc.SignalResponse(leave=leave).SerializeToString())
            await ws.close(1000)

    # --- room lifecycle and webhooks ----------------------------------------------------------------
    def _webhook(self, kind: str, room: models.Room, participant: Participant | None = None,
                 track: models.TrackInfo | None = None) -> None:
        if not self.webhook_urls:
            return
        event = webhook_pb.WebhookEvent(event=kind, room=room, id=_sid("EV_"), created_at=int(time.time()))
        if participant is not None:
            event.participant.CopyFrom(participant.info())
        if track is not None:
            event.track.CopyFrom(track)
        body = json_format.MessageToJson(event, indent=None).encode("utf-8")
        drop, reorder = self.webhook_faults["drop"], self.webhook_faults["reorder"]
        if drop.get(kind, 0) > 0:  # fault injection: this one is lost
            drop[kind] -= 1
            self.webhook_log.append({"url": None, "id": event.id, "event": kind, "attempts": 0,
                                     "status": "dropped", "error": None})
            return
        if reorder.get(kind, 0) > 0:  # fault injection: goes out after the next one
            reorder[kind] -= 1
            timer = asyncio.get_running_loop().call_later(REORDER_HOLD_S, self._release_held)
            self._held.append((event.id, kind, body, timer))
            return
        self._deliver(event.id, kind, body)
        self._release_held()

    def _deliver(self, event_id: str, kind: str, body: bytes) -> None:
        secret = self.keys[self.webhook_key]
        for url in self.webhook_urls:
            sender = self._senders.get(url)
            if sender is None:
                sender = self._senders[url] = WebhookSender(url, self.webhook_key, secret, self.webhook_log)
            sender.send(event_id, kind, body)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for event_id, kind, body, timer in held:
            timer.cancel()
            self._deliver(event_id, kind, body)

    def _room_joined(self, participant: Participant) -> None:
        timer = self._finishers.pop(participant.room, None)
        if timer is not None:
            timer.cancel()
        self._room(participant.room)

    def _activate(self, participant: Participant) -> None:
        if participant.active or participant.gone:
            return
        participant.active = True
        self._webhook("participant_joined", self._room(participant.room), participant)
        for track in participant.tracks:  # published while connecting: announced once active
            self._webhook("track_published", self._room(participant.room), participant, track)

    def _left(self, participant: Participant) -> None:
        if participant.gone:
            return
        participant.gone = True
        if participant.room not in self.rooms:
            return
        # Never active (its media never connected): livekit-server says connection aborted, not left.
        kind = "participant_left" if participant.active else "participant_connection_aborted"
        if participant.active:
            for track in participant.tracks:  # v1.13.5: every track_unpublished, then participant_left
                self._webhook("track_unpublished", self._room(participant.room), participant, track)
        self._webhook(kind, self._room(participant.room), participant)
        if not any(p.room == participant.room for p in self.participants.values()):
            loop = asyncio.get_running_loop()
            old = self._finishers.pop(participant.room, None)
            if old is not None:
                old.cancel()
            self._finishers[participant.room] = loop.call_later(
                self.departure_timeout, self._finish, participant.room
            )

    def _finish(self, name: str) -> None:
        """The room closes: ``room_finished`` (departure timeout elapsed, or DeleteRoom)."""
        timer = self._finishers.pop(name, None)
        if timer is not None:
            timer.cancel()
        if name not in self.rooms or any(p.room == name for p in self.participants.values()):
            return
        room = self._room(name)
        del self.rooms[name]
        self._webhook("room_finished", room)

    def _room(self, name: str) -> models.Room:
        if name not in self.rooms:
            now = int(time.time())
            self.rooms[name] = models.Room(
                sid=_sid("RM_"), name=name, creation_time=now, creation_time_ms=now * 1000,
                empty_timeout=300, departure_timeout=int(self.departure_timeout),
            )
            self._webhook("room_started", self.rooms[name])
        room = models.Room()
        room.CopyFrom(self.rooms[name])
        # livekit-server counts active participants only (a signalling-only one, e.g. a probe, is 0)
        room.num_participants = sum(1 for p in self.participants.values() if p.room == name and p.active)
        return room

    # --- Twirp RoomService -------------------------------------------------------------------
    async def twirp(self, request: Request) -> Response:
        method = request.path_params["method"]
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        call: dict[str, Any] = {"method": method, "room": "", "identity": "", "status": 200}
        self.calls.append(call)
        try:
            handler, request_class, permission = self._methods()[method]
        except KeyError:
            return self._twirp_error(call, Refusal(404, f"no handler for method {method}", "bad_route"))
        if media_type not in ("application/json", "application/protobuf"):
            refusal = Refusal(404, f"unexpected Content-Type: {media_type}", "bad_route")
            return self._twirp_error(call, refusal)
        body = await request.body()
        message = request_class()
        try:
            if media_type == "application/json":
                json_format.Parse(body or b"{}", message, ignore_unknown_fields=True)
            else:
                message.ParseFromString(body)
        except (DecodeError, json_format.ParseError) as exc:
            return self._twirp_error(call, Refusal(400, f"failed to parse request: {exc}", "malformed"))
        room = str(getattr(message, "room", "") or getattr(message, "name", ""))
        call.update(room=room, identity=str(getattr(message, "identity", "")))
        try:
            claims = verify_token(self.keys, token_from(request.headers, request.query_params))
            video = claims.get("video")
            video = video if isinstance(video, dict) else {}
            allowed = bool(video.get(permission)) and (permission != "roomAdmin" or video.get("room") == room)
            if not allowed:
                raise Refusal(401, "permissions denied")
            answer = await handler(message)
        except Refusal as refusal:
            return self._twirp_error(call, refusal)
        if media_type == "application/json":
            text = json_format.MessageToJson(
                answer, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
            return Response(text, media_type="application/json")
        return Response(answer.SerializeToString(), media_type="application/protobuf")

    def _twirp_error(self, call: dict[str, Any], refusal: Refusal) -> Response:
        call["status"] = refusal.status
        return JSONResponse({"code": refusal.code, "msg": refusal.message}, status_code=refusal.status)

    def _methods(self) -> dict[str, tuple[Callable[[Any], Any], type[Message], str]]:
        return {
            "CreateRoom": (self._create_room, room_pb.CreateRoomRequest, "roomCreate"),
            "ListRooms": (self._list_rooms, room_pb.ListRoomsRequest, "roomList"),
            "DeleteRoom": (self._delete_room, room_pb.DeleteRoomRequest, "roomCreate"),
            "ListParticipants": (self._list_participants, room_pb.ListParticipantsRequest, "roomAdmin"),
            "GetParticipant": (self._get_participant, room_pb.RoomParticipantIdentity, "roomAdmin"),
            "RemoveParticipant": (self._remove_participant, room_pb.RoomParticipantIdentity, "roomAdmin"),
        }

    async def _create_room(self, req: room_pb.CreateRoomRequest) -> models.Room:
        return self._room(req.name)

    async def _list_rooms(self, req: room_pb.ListRoomsRequest) -> room_pb.ListRoomsResponse:
        names = [n for n in self.rooms if not req.names or n in req.names]
        return room_pb.ListRoomsResponse(rooms=[self._room(n) for n in names])

    async def _delete_room(self, req: room_pb.DeleteRoomRequest) -> room_pb.DeleteRoomResponse:
        if req.room not in self.rooms:
            raise Refusal(404, "room not found", "not_found")
        for p in [p for p in self.participants.values() if p.room == req.room]:
            await self._kick(p, models.DisconnectReason.ROOM_DELETED)
        self._finish(req.room)
        return room_pb.DeleteRoomResponse()

    async def _list_participants(self, req: room_pb.ListParticipantsRequest) -> Message:
        infos = [p.info() for p in self.participants.values() if p.room == req.room]
        return room_pb.ListParticipantsResponse(participants=infos)

    def _find(self, room: str, identity: str) -> Participant:
        for p in self.participants.values():
            if (p.room, p.identity) == (room, identity):
                return p
        raise Refusal(404, "participant not found", "not_found")

    async def _get_participant(self, req: room_pb.RoomParticipantIdentity) -> models.ParticipantInfo:
        return self._find(req.room, req.identity).info()

    async def _remove_participant(self, req: room_pb.RoomParticipantIdentity) -> Message:
        await self._kick(self._find(req.room, req.identity), models.DisconnectReason.PARTICIPANT_REMOVED)
        return room_pb.RemoveParticipantResponse()


def _wants_reconnect(query: Mapping[str, str], path: str) -> bool:
    """A resume: ``reconnect=1`` on ``/rtc``; on ``/rtc/v1`` the ``join_request``'s ``reconnect``."""
    if path.startswith("/rtc/v1"):
        raw = query.get("join_request") or ""
        try:
            wrapped = rtc.WrappedJoinRequest.FromString(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            return bool(rtc.JoinRequest.FromString(wrapped.join_request).reconnect)
        except (ValueError, DecodeError):
            return False
    return query.get("reconnect") in ("1", "true")


def build_app(keys: dict[str, str], conf: Mapping[str, Any] | None = None) -> Starlette:
    """The double as an ASGI app for in-process use; its state is ``app.state.double`` (LiveKitDouble)."""
    return LiveKitDouble(keys, conf).app


# --- command line, like livekit-server's ---------------------------------------------------------
def _parse_keys(text: str) -> dict[str, str]:
    loaded = yaml.safe_load(text) if text.strip() else {}
    if not isinstance(loaded, dict):
        raise SystemExit(f"keys must be 'KEY: SECRET' lines, got {text!r}")
    return {str(k): str(v) for k, v in loaded.items()}


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal after shutdown (exit -15); livekit-server exits 0 instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.force_exit = self.should_exit
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="livekit-server test double")
    parser.add_argument("--config")
    parser.add_argument("--port", type=int)
    parser.add_argument("--bind", action="append")
    parser.add_argument("--keys")
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--resume-window", type=float, default=DEFAULT_RESUME_WINDOW_S)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"livekit-server double: ignoring {unknown}", file=sys.stderr)
    conf: dict[str, Any] = {}
    if args.config:
        conf = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        errors = config_errors(conf)
        if errors:
            print(f"could not parse config: {'; '.join(errors)}", file=sys.stderr)
            return 1
    keys = {str(k): str(v) for k, v in (conf.get("keys") or {}).items()}
    keys.update(_parse_keys(args.keys if args.keys is not None else os.environ.get("LIVEKIT_KEYS", "")))
    if args.dev and not keys:
        keys = {"devkey": "secret"}
    if not keys:
        print("one of key-file or keys must be provided in order to support a secure installation",
              file=sys.stderr)
        return 1
    port = args.port if args.port is not None else int(conf.get("port", DEFAULT_PORT))
    binds = args.bind or conf.get("bind_addresses") or ["127.0.0.1"]
    sockets: list[socket.socket] = []
    for address in binds:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            print(f"listen tcp {address}:{port}: bind: {exc.strerror}", file=sys.stderr)
            return 1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # like Go's net/http: no Nagle delay
        sock.listen(128)
        port = sock.getsockname()[1]  # --port 0: every address shares the first one's port
        sockets.append(sock)
    double = LiveKitDouble(keys, conf, resume_window=args.resume_window)
    rtc_conf = conf.get("rtc") or {}
    fields = {
        "portHttp": port, "nodeID": double.node_id, "nodeIP": rtc_conf.get("node_ip", "127.0.0.1"),
        "version": SERVER_VERSION, "bindAddresses": binds,
        "rtc.portTCP": rtc_conf.get("tcp_port", 7881), "rtc.portUDP": rtc_conf.get("udp_port", 7882),
    }
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    print(f"{stamp}\tINFO\tlivekit\tservice/server.go\t{START_MARKER}\t{json.dumps(fields)}", flush=True)
    # uvicorn logs a denial response (401 before the upgrade) as an error; it is the intended answer.
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "without completing handshake" not in record.getMessage()
    )
    config = uvicorn.Config(double.app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    asyncio.run(_Server(config).serve(sockets=sockets))
    return 0


# --- helper for tests ----------------------------------------------------------------------------
class DoubleStartError(RuntimeError):
    pass


@dataclasses.dataclass
class RunningDouble:
    port: int
    process: subprocess.Popen[str]
    output: deque[str]  # the last lines of stdout+stderr

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_double/state", timeout=5) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/_double/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def webhook_faults(self, drop: Mapping[str, int] | None = None, reorder: Mapping[str, int] | None = None) -> None:
        """Drop / reorder the next webhooks of these kinds (see the module docstring); none: clear."""
        body = json.dumps({"drop": dict(drop or {}), "reorder": dict(reorder or {})}).encode()
        request = urllib.request.Request(f"{self.url}/_double/webhook_faults", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5):
            pass


@contextlib.contextmanager
def run_double(
    keys: dict[str, str], port: int | None = None, extra_args: Sequence[str] = (), *,
    startup_timeout: float = 10.0,
) -> Iterator[RunningDouble]:
    """Run the double as a child process on 127.0.0.1 (a free port when ``port`` is None) until
    ``GET /`` answers OK; stop it (terminate, wait, kill) on exit."""
    argv = [sys.executable, "-u", str(Path(__file__).resolve()), "--port", str(port or 0),
            "--bind", "127.0.0.1"]
    if keys:
        argv += ["--keys", yaml.safe_dump(keys, default_flow_style=False)]
    process = subprocess.Popen([*argv, *extra_args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, encoding="utf-8")
    output: deque[str] = deque(maxlen=500)
    found: list[int] = []
    started = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if START_MARKER in line and not found:
                found.append(int(json.loads(line.split("\t")[-1])["portHttp"]))
                started.set()
        started.set()

    reader = threading.Thread(target=pump, name="livekit-double-output", daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + startup_timeout
        if not started.wait(timeout=startup_timeout) or not found:
            raise DoubleStartError("livekit double did not start:\n" + "\n".join(output))
        double = RunningDouble(found[0], process, output)
        while not _answers_ok(double.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise DoubleStartError("livekit double is not answering:\n" + "\n".join(output))
            time.sleep(0.02)
        yield double
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/", timeout=1) as response:
            return bool(response.read() == b"OK")
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
