"""Real WebRTC participants (libwebrtc through the ``livekit`` SDK), each in a namespace of ours, on
the real livekit-server: ``participant_joined`` only for a participant whose media connected, counted
by ListRooms while in; video crosses the SFU both ways' worth (a publisher's frames decoded by a
subscriber). The signalling-only counterpart (aborted, never joined) is in the conformance suite."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.tiers import require
from livekit_conformance.harness import Target, real_target, twirp

pytestmark = pytest.mark.real_livekit
PEER = Path(__file__).with_name("rtc_peer.py")


@pytest.fixture(scope="module")
def lk() -> Iterator[Target]:
    from fixtures.livekit_real import livekit_binary
    from fixtures.netns import netns_available

    require(livekit_binary() is not None, "livekit-server v1.13.5 (scripts/dev.py setup --tests)")
    require(netns_available(), "network namespaces (root and iproute2's ip)")
    with real_target() as target:
        yield target


def peer(target: Target, name: str, ip: str, room: str, *, publish: bool, seconds: float) -> subprocess.Popen[str]:
    host = target.topo.hosts.get(name) or target.topo.host(name)
    if target.lan.name not in host.addresses:
        target.topo.attach(host, target.lan, ip, default=True)
    argv = [sys.executable, str(PEER), "--url", target.ws_url, "--token", target.token(room, name),
            "--seconds", str(seconds), *(["--publish"] if publish else [])]
    return subprocess.Popen(host.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=60)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"peer printed nothing (exit {proc.returncode}):\n{err[-3000:]}"
    return dict(json.loads(lines[-1]))


def test_media_connected_participants_are_joined_counted_and_receive_video(lk: Target) -> None:
    room = f"act-{uuid.uuid4().hex[:6]}"
    assert twirp(lk, "CreateRoom", {"name": room}).status_code == 200
    pub = peer(lk, "pro", "198.18.150.11", room, publish=True, seconds=8)
    sub = peer(lk, "pat", "198.18.150.12", room, publish=False, seconds=6)
    counts: list[int] = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and pub.poll() is None:
        rooms = twirp(lk, "ListRooms", {"names": [room]}).json().get("rooms", [])
        counts.append(int(rooms[0].get("num_participants", 0)) if rooms else -1)
        time.sleep(0.5)
    got_sub, got_pub = result(sub), result(pub)
    assert got_sub["connected"] and got_pub["connected"], (got_sub, got_pub, lk.log_tail())
    assert int(got_sub["frames"]) > 0, got_sub  # the professional's video decoded on the patient's side
    assert "pro" in got_sub["remote"]
    assert max(counts) == 2, counts  # both active: ListRooms (the on-demand idle stop's input) counts them
    events = lk.hooks.wait_for(room, "participant_left", 20)
    lk.hooks.wait_for(room, "room_finished", 20)
    events = lk.hooks.events(room)
    joined = [h.json()["participant"]["identity"] for h in lk.hooks.hooks
              if h.json().get("room", {}).get("name") == room and h.event == "participant_joined"]
    assert sorted(joined) == ["pat", "pro"], events
    assert "participant_connection_aborted" not in events, events
    assert events[0] == "room_started" and events[-1] == "room_finished", events


def test_track_webhooks_follow_the_publishers_media_and_precede_its_leaving(lk: Target) -> None:
    """The double's ``track_*`` webhooks, checked here: ``track_published`` only after the publisher's
    ``participant_joined`` (its media up); on leaving, its ``track_unpublished`` before its
    ``participant_left`` — the order presence reads them in."""
    room = f"trk-{uuid.uuid4().hex[:6]}"
    assert twirp(lk, "CreateRoom", {"name": room}).status_code == 200
    got = result(peer(lk, "pro", "198.18.150.11", room, publish=True, seconds=3))
    assert got["connected"], (got, lk.log_tail())
    lk.hooks.wait_for(room, "room_finished", 30)
    mine = [h.event for h in lk.hooks.hooks if h.json().get("room", {}).get("name") == room
            and h.json().get("participant", {}).get("identity") == "pro"]
    assert "track_published" in mine and "track_unpublished" in mine, mine
    assert mine.index("participant_joined") < mine.index("track_published"), mine
    assert mine.index("track_unpublished") < mine.index("participant_left"), mine
    track = next(h.json() for h in lk.hooks.hooks if h.event == "track_published"
                 and h.json().get("room", {}).get("name") == room)
    assert track["track"]["type"] == "VIDEO", track  # the published camera, named as the double names it


def test_a_dropped_signalling_connection_is_resumed_not_a_departure(lk: Target) -> None:
    """The phone's WebSocket dies (a lift, a Wi-Fi hand-over) while its media is up: livekit-server
    keeps the participant for a resume — same sid, no ``participant_left``, no second
    ``participant_joined`` — and the SDK resumes. The double models this with ``--resume-window``
    (``presence/test_double_webhooks.py``); presence must not say "left" for a blip."""
    from urllib.parse import urlsplit

    room = f"res-{uuid.uuid4().hex[:6]}"
    assert twirp(lk, "CreateRoom", {"name": room}).status_code == 200
    pro = peer(lk, "pro", "198.18.150.11", room, publish=True, seconds=14)
    pat = peer(lk, "pat", "198.18.150.12", room, publish=False, seconds=12)
    assert pat.stdout is not None
    assert '"connected"' in pat.stdout.readline()  # {"event": "connected"}
    time.sleep(2)
    port = urlsplit(lk.url).port
    host = lk.topo.hosts["pat"]
    killed = host.run(["ss", "-K", "dst", urlsplit(lk.url).hostname, "dport", "=", str(port)], timeout=10)
    assert killed.returncode == 0 and "ESTAB" in killed.stdout, killed  # its signalling socket, aborted
    time.sleep(1)
    listed = twirp(lk, "ListParticipants", {"room": room}).json().get("participants", [])
    got_pat, got_pro = result(pat), result(pro)
    assert got_pat["connected"], (got_pat, lk.log_tail())
    assert int(got_pat["reconnected"]) >= 1, got_pat  # the SDK resumed
    assert int(got_pat["frames"]) > 0, got_pat
    assert got_pro["connected"] and int(got_pro["reconnected"]) == 0, got_pro  # the other side never noticed
    assert got_pat["sid"] in [p["sid"] for p in listed if p["identity"] == "pat"], listed  # held meanwhile
    lk.hooks.wait_for(room, "room_finished", 30)
    mine = [h.event for h in lk.hooks.hooks if h.json().get("room", {}).get("name") == room
            and h.json().get("participant", {}).get("identity") == "pat"]
    assert mine == ["participant_joined", "participant_left"], mine  # one session, one departure at the end
    sids = {h.json()["participant"]["sid"] for h in lk.hooks.hooks if h.json().get("room", {}).get("name") == room
            and h.json().get("participant", {}).get("identity") == "pat"}
    assert sids == {got_pat["sid"]}, sids
