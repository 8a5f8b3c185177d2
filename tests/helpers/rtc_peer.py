"""A professional in a call, in Python (``livekit.rtc``), for the media tests: run it INSIDE a test
namespace (``host.argv([python, helpers/rtc_peer.py])``) so its libwebrtc stays in our topology.

Reads ``{url, token, seconds}`` on stdin; publishes a generated moving pattern (never black) and
counts the non-black video frames it decodes from anyone else in the room; prints
``RTC-PEER {"frames_received": N, "first_frame_ms": …}`` when ``seconds`` have passed."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any


async def main() -> dict[str, Any]:
    from livekit import rtc

    from linkpronto.media.probe import BLACK_MEAN, FPS, HEIGHT, WIDTH, pattern, rgb_mean

    args = json.loads(sys.stdin.readline())
    room = rtc.Room()
    frames = 0
    first: float | None = None
    t0 = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []

    async def read(track: Any) -> None:
        nonlocal frames, first
        async for ev in rtc.VideoStream(track):
            if rgb_mean(bytes(ev.frame.convert(rtc.VideoBufferType.RGBA).data)) > BLACK_MEAN:
                frames += 1
                if first is None:
                    first = (time.perf_counter() - t0) * 1000

    def on_track(track: Any, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            tasks.append(asyncio.create_task(read(track)))

    room.on("track_subscribed", on_track)
    await asyncio.wait_for(room.connect(args["url"], args["token"]), 30)
    src = rtc.VideoSource(WIDTH, HEIGHT)
    track = rtc.LocalVideoTrack.create_video_track("professional", src)
    await room.local_participant.publish_track(track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))
    n = 0
    end = time.monotonic() + float(args.get("seconds", 20))
    while time.monotonic() < end:
        src.capture_frame(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, pattern(n)))
        n += 1
        await asyncio.sleep(1 / FPS)
    for t in tasks:
        t.cancel()
    await room.disconnect()
    return {"frames_received": frames, "first_frame_ms": first}


if __name__ == "__main__":
    out = asyncio.run(main())
    print("RTC-PEER " + json.dumps(out), flush=True)
