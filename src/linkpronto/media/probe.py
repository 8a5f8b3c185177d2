"""The synthetic publisher and subscriber (``livekit.rtc``), run as a child process.

``python -m linkpronto.media.probe`` reads one JSON object on stdin — ``{url, sub_token, pub_token,
timeout_s}`` (never a command-line argument: no token shows in a process list; the API secret never
reaches the child at all) — and prints one
:class:`~linkpronto.media.result.ProbeReport` as JSON on stdout. The parent (media/rung.py) creates
the probe room (``linkpronto-probe-media-<hex>``, RoomService CreateRoom, so a LiveKit with
``room.auto_create: false`` works too) and deletes it afterwards, whatever the child did. The child:

1. gets two short-lived probe tokens the parent minted (:func:`probe_tokens`: ``lp-probe-…``
   identities, one room, publish xor subscribe) — minting them here cost every run an import of
   ``livekit.api`` (~0.3 s of CPU, a third of the child's), paid on the machine serving creates;
2. connects a subscriber and a publisher to ``url`` — the public URL's ``/_linkpronto/livekit`` (or
   LiveKit Cloud): the path a phone outside takes;
3. publishes a generated video track (a moving pattern, never black) and a tone, and waits until the
   subscriber has decoded a non-black frame;
4. reads the selected ICE candidate pair from each side's ``get_rtc_stats()``, and disconnects.

Only this module imports ``livekit.rtc`` (inside :func:`run_probe`: the parent imports this module
for :func:`probe_tokens` without loading the native library); without the extra the parent never
starts it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import sys
import time
from datetime import timedelta
from typing import Any

from linkpronto.media import PROBE_IDENTITY_PREFIX
from linkpronto.media.result import Candidate, ProbeReport

WIDTH, HEIGHT, FPS = 160, 120, 15
SAMPLE_RATE = 48000
TOKEN_TTL = timedelta(minutes=2)
BLACK_MEAN = 16.0  # mean RGB level below which a frame counts as black


def _debug(*args: Any) -> None:
    if os.environ.get("LINKPRONTO_PROBE_DEBUG"):
        print(*args, file=sys.stderr, flush=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _debug("feed", repr(task.exception()))


def probe_grant_token(api_key: str, api_secret: str, room: str, identity: str, *, publish: bool,
                      ttl: timedelta = TOKEN_TTL) -> str:
    from livekit.api import AccessToken, VideoGrants

    grants = VideoGrants(room_join=True, room=room, can_publish=publish, can_subscribe=not publish,
                         can_publish_data=False)
    return (AccessToken(api_key, api_secret).with_identity(identity).with_ttl(ttl)
            .with_grants(grants).with_attributes({"linkpronto.role": "probe"}).to_jwt())


def probe_tokens(api_key: str, api_secret: str, room: str) -> tuple[str, str]:
    """``(subscriber token, publisher token)`` for one run in ``room`` (called by the parent)."""
    sub = probe_grant_token(api_key, api_secret, room, PROBE_IDENTITY_PREFIX + "sub-" + secrets.token_hex(4),
                            publish=False)
    pub = probe_grant_token(api_key, api_secret, room, PROBE_IDENTITY_PREFIX + "pub-" + secrets.token_hex(4),
                            publish=True)
    return sub, pub


def rgb_mean(rgba: bytes, samples: int = 600) -> float:
    """The mean R, G and B level (0-255) of about ``samples`` pixels of an RGBA frame (alpha ignored)."""
    pixels = len(rgba) // 4
    if pixels == 0:
        return 0.0
    step = max(1, pixels // samples)
    total = count = 0
    for p in range(0, pixels, step):
        i = 4 * p
        total += rgba[i] + rgba[i + 1] + rgba[i + 2]
        count += 3
    return total / count


def pattern(t: int) -> bytes:
    """A moving gradient with a bright bar: RGBA, never black, different every frame."""
    row = bytearray()
    bar = (t * 4) % WIDTH
    for x in range(WIDTH):
        if abs(x - bar) < 8:
            row += b"\xff\xff\xff\xff"
        else:
            row += bytes(((x * 255) // WIDTH, (t * 7) % 256, 128, 255))
    return bytes(row) * HEIGHT


def _candidate(stats: list[Any]) -> Candidate | None:
    """The selected pair's remote candidate (LiveKit's side) with the pair's protocol."""
    by_id: dict[str, tuple[str, Any]] = {}
    selected: list[str] = []
    pairs: list[Any] = []
    for s in stats:
        kind = s.WhichOneof("stats")
        if kind is None:
            continue
        sub = getattr(s, kind)
        by_id[sub.rtc.id] = (kind, sub)
        if kind == "transport" and sub.transport.selected_candidate_pair_id:
            selected.append(sub.transport.selected_candidate_pair_id)
        if kind == "candidate_pair":
            pairs.append(sub)
        if kind in ("local_candidate", "remote_candidate"):
            _debug(kind, sub.candidate.protocol, sub.candidate.address, sub.candidate.port)
    pair = None
    for pid in selected:
        found = by_id.get(pid)
        if found is not None and found[0] == "candidate_pair":
            pair = found[1].candidate_pair
            break
    if pair is None:  # some stacks do not fill selectedCandidatePairId: the nominated, succeeded one
        from livekit.rtc._proto import stats_pb2

        for p in pairs:
            cp = p.candidate_pair
            if cp.nominated and cp.state == stats_pb2.IceCandidatePairState.PAIR_SUCCEEDED:
                pair = cp
                break
    if pair is None:
        return None
    remote = by_id.get(pair.remote_candidate_id)
    if remote is None:
        return None
    rc = remote[1].candidate
    from livekit.rtc._proto import stats_pb2

    name = stats_pb2.IceCandidateType.Name(rc.candidate_type).lower()
    ctype = name.split("_")[-1] if "_" in name else name
    return Candidate(type=ctype, protocol=(rc.protocol or "").lower(), address=f"{rc.address}:{rc.port}")


async def run_probe(url: str, sub_tok: str, pub_tok: str, timeout_s: float) -> ProbeReport:
    """One measurement. No ICE restriction here: with ``ssh_forward_media`` LiveKit runs ICE lite
    (livekit/local.py ``forwards_media``), so the only pair it can form is the one this probe opens
    towards LiveKit's advertised (forwarded) address. ``TRANSPORT_NOHOST`` was tried and does not stop
    a full-ICE LiveKit from reaching the probe's host candidates (a UDP prflx pair formed anyway)."""
    from livekit import rtc

    sub, pub = rtc.Room(), rtc.Room()
    frames = 0
    black = False
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    t_pub = [0.0]
    readers: list[asyncio.Task[None]] = []

    async def read(track: Any) -> None:
        nonlocal frames, black
        stream = rtc.VideoStream(track)
        try:
            async for ev in stream:
                buf = ev.frame.convert(rtc.VideoBufferType.RGBA)
                mean = rgb_mean(bytes(buf.data))
                _debug("frame", mean)
                if mean < BLACK_MEAN:
                    black = True
                    continue
                frames += 1
                black = False
                if not first.done():
                    first.set_result(time.perf_counter())
                if frames >= 3:
                    break
        finally:
            await stream.aclose()

    def on_track(track: Any, *_: Any) -> None:
        _debug("track_subscribed", track.kind)
        if track.kind == rtc.TrackKind.KIND_VIDEO:
            readers.append(asyncio.create_task(read(track)))

    sub.on("track_subscribed", on_track)
    error = ""
    stop = asyncio.Event()
    feeder: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(sub.connect(url, sub_tok, rtc.RoomOptions(auto_subscribe=True)),
                               timeout_s)
        t_pub[0] = time.perf_counter()
        await asyncio.wait_for(pub.connect(url, pub_tok, rtc.RoomOptions()), timeout_s)
        vsrc = rtc.VideoSource(WIDTH, HEIGHT)
        asrc = rtc.AudioSource(SAMPLE_RATE, 1)
        vtrack = rtc.LocalVideoTrack.create_video_track("probe-video", vsrc)
        atrack = rtc.LocalAudioTrack.create_audio_track("probe-audio", asrc)

        async def feed() -> None:
            n = 0
            samples = SAMPLE_RATE // FPS
            while not stop.is_set():
                vsrc.capture_frame(rtc.VideoFrame(WIDTH, HEIGHT, rtc.VideoBufferType.RGBA, pattern(n)))
                af = rtc.AudioFrame.create(SAMPLE_RATE, 1, samples)
                pcm = af.data  # int16 samples
                for i in range(samples):
                    pcm[i] = int(8000 * math.sin(2 * math.pi * 440 * (n * samples + i) / SAMPLE_RATE))
                await asyncio.wait_for(asrc.capture_frame(af), 1)
                n += 1
                await asyncio.sleep(1 / FPS)

        feeder = asyncio.create_task(feed())
        feeder.add_done_callback(_log_failure)
        await pub.local_participant.publish_track(vtrack, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA))
        await pub.local_participant.publish_track(atrack,
                                                  rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
        remaining = max(0.5, timeout_s - (time.perf_counter() - t_pub[0]))
        try:
            await asyncio.wait_for(asyncio.shield(first), remaining)
        except TimeoutError:
            error = f"no decoded frame within {timeout_s:.0f} s (ICE did not connect)"
    except TimeoutError:
        error = f"could not connect within {timeout_s:.0f} s"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    candidate = pub_candidate = None
    try:
        if sub.isconnected():
            st = await asyncio.wait_for(sub.get_rtc_stats(), 3)
            # One peer connection may carry both directions (LiveKit's single-PC mode): either list.
            candidate = _candidate(list(st.subscriber_stats)) or _candidate(list(st.publisher_stats))
        if pub.isconnected():
            st = await asyncio.wait_for(pub.get_rtc_stats(), 3)
            pub_candidate = _candidate(list(st.publisher_stats)) or _candidate(list(st.subscriber_stats))
    except Exception as exc:
        _debug("stats", repr(exc))
    stop.set()
    for t in readers:
        t.cancel()
    if feeder is not None:
        feeder.cancel()
    for room in (pub, sub):
        try:
            await asyncio.wait_for(room.disconnect(), 3)
        except Exception:  # noqa: S110
            pass
    ffm = (first.result() - t_pub[0]) * 1000 if first.done() and frames > 0 else None
    return ProbeReport(frames=frames, first_frame_ms=ffm, candidate=candidate, publisher_candidate=pub_candidate,
                       error=error if frames == 0 else "", black=black and frames == 0)


def main() -> int:
    args = json.loads(sys.stdin.readline())
    report = asyncio.run(run_probe(args["url"], args["sub_token"], args["pub_token"],
                                   float(args.get("timeout_s", 15.0))))
    sys.stdout.write("LINKPRONTO-PROBE " + json.dumps(report.to_json()) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
