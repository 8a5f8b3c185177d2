"""A real WebRTC participant (the ``livekit`` realtime SDK, libwebrtc) for the real-LiveKit tier.

Run it inside a test namespace (``ip netns exec <ns> python rtc_peer.py ...``) so its media stays
inside. It connects, optionally publishes a generated video (a moving gradient), counts the video
frames it receives from others, holds for ``--seconds``, disconnects, and prints one JSON line:
``{"connected": true, "identity": ..., "sid": ..., "frames": N, "remote": [...], "reconnecting": N,
"reconnected": N}`` (the SDK's own resumes) (``connected`` false + ``error``
when the connection failed). Right after connecting it prints ``{"event": "connected"}`` (a test can
act while it holds). ``--join BASE LINK_TOKEN`` joins as a patient first: POST ``BASE/_linkpronto/api/join``
and use the grant's URL and token (``--url``/``--token`` are then not needed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from livekit import rtc

W, H = 160, 120


async def main(url: str, token: str, seconds: float, publish: bool, connect_timeout: float) -> dict[str, object]:
    room = rtc.Room()
    frames = 0
    remote: set[str] = set()
    tasks: list[asyncio.Task[None]] = []

    async def count(track: rtc.Track) -> None:
        nonlocal frames
        async for _ev in rtc.VideoStream(track):
            frames += 1

    @room.on("track_subscribed")
    def on_track(track: rtc.Track, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant) -> None:
        remote.add(participant.identity)
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.append(asyncio.ensure_future(count(track)))

    resumes = {"reconnecting": 0, "reconnected": 0}

    @room.on("reconnecting")
    def on_reconnecting() -> None:
        resumes["reconnecting"] += 1

    @room.on("reconnected")
    def on_reconnected() -> None:
        resumes["reconnected"] += 1

    try:
        await asyncio.wait_for(room.connect(url, token, rtc.RoomOptions(auto_subscribe=True)), connect_timeout)
    except Exception as exc:
        return {"connected": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps({"event": "connected"}), flush=True)
    identity = room.local_participant.identity
    sid = room.local_participant.sid
    pusher = None
    if publish:
        source = rtc.VideoSource(W, H)
        track = rtc.LocalVideoTrack.create_video_track("camera", source)
        await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))

        async def push() -> None:
            n = 0
            while True:
                shade = n % 256
                data = bytes([shade, 255 - shade, 128, 255]) * (W * H)
                source.capture_frame(rtc.VideoFrame(W, H, rtc.VideoBufferType.RGBA, data))
                n += 1
                await asyncio.sleep(1 / 15)

        pusher = asyncio.ensure_future(push())
    await asyncio.sleep(seconds)
    if pusher is not None:
        pusher.cancel()
    for t in tasks:
        t.cancel()
    await room.disconnect()
    return {"connected": True, "identity": identity, "frames": frames, "remote": sorted(remote),
            "sid": sid, **resumes}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--join", nargs=2, metavar=("BASE", "LINK_TOKEN"))
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--connect-timeout", type=float, default=20.0)
    a = parser.parse_args()
    if a.join:
        import httpx

        grant = httpx.post(a.join[0] + "/_linkpronto/api/join", json={"token": a.join[1]}, timeout=30).json()
        a.url, a.token = grant["livekit_url"], grant["access_token"]
    result = asyncio.run(main(a.url, a.token, a.seconds, a.publish, a.connect_timeout))
    print(json.dumps(result), flush=True)
    sys.exit(0 if result.get("connected") else 1)
