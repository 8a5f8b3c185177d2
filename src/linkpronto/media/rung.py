"""One media measurement (:class:`MediaRung`) and its own cadence (:class:`MediaKeeper`).

How it plugs into the stack (stack.py, today's runner; see changes/media.md for core's runner)::

    keeper = MediaKeeper(rung.run, interval=settings.verify.media_interval,
                         key=lambda: (public_url, livekit restarts), can_run=stack._can_verify,
                         on_change=stack.invalidate)   # reach changed: the ladder re-runs at once
    keeper.start()  /  keeper.poke()  /  await keeper.stop()
    keeper.result_for(public_url)   # what the ladder's ``media`` check reports (None: not yet)

A run never blocks the ladder: the ladder only *reads* the latest result. ``on_change`` fires only
when what a result means changes (pending → measured, reach changed), never on a periodic re-run
with the same outcome — so a ready stack stays ready and a create never waits for the rung.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

from linkpronto import paths
from linkpronto.aio import wait_set
from linkpronto.i18n import Text
from linkpronto.livekit.remote import http_base
from linkpronto.media import PROBE_PREFIX
from linkpronto.media.result import MediaResult, PathFacts, ProbeReport, Reach, judge

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 15.0
#: After a ``none`` (or a failed run) look again this soon, so recovery is seen quickly.
RETRY_AFTER_NONE_S = 5.0
REPORT_PREFIX = "LINKPRONTO-PROBE "

FIX_INSTALL = Text(
    "Instale o teste de vídeo: pip install linkpronto[media] (ou scripts/dev.py setup).",
    "Install the video check: pip install linkpronto[media] (or scripts/dev.py setup).",
)


def rtc_available() -> bool:
    """``livekit.rtc`` (the optional extra ``linkpronto[media]``) is installed."""
    try:
        return importlib.util.find_spec("livekit.rtc") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class RungConfig:
    """What one run needs, read fresh before each run."""

    url: str  # what the probe connects to: ws(s)://<public>/_linkpronto/livekit, or LiveKit Cloud
    api_url: str  # RoomService: the local LiveKit, or Cloud
    api_key: str
    api_secret: str
    facts: PathFacts
    fallback_reach: Reach  # verify.assess_media's judgement, used only when the rung cannot run
    fallback_why: Text


def not_measured(public_url: str | None, reach: Reach, why: Text, reason: Text, fix: Text | None) -> MediaResult:
    """The configuration's judgement, labelled as such (``measured: false``)."""
    return MediaResult(
        reach, measured=False,
        detail=Text(f"não medido ({reason.pt}); pela configuração: {why.pt}",
                    f"not measured ({reason.en}); from the configuration: {why.en}"),
        fix=fix, public_url=public_url, finished_at=time.monotonic(),
    )


def probe_room() -> str:
    import secrets

    return f"{PROBE_PREFIX}-media-{secrets.token_hex(6)}"


def probe_url(public_url: str, livekit_mode: str, cloud_url: str) -> str:
    from linkpronto.livekit.remote import ws_base

    if livekit_mode == "cloud":
        return ws_base(cloud_url)
    return ws_base(public_url) + paths.LIVEKIT


class MediaRung:
    """One run: the probe child (media/probe.py) through ``config().url``, judged by :func:`judge`."""

    def __init__(self, config: Callable[[str], RungConfig], *, timeout_s: float = PROBE_TIMEOUT_S,
                 python: str | None = None, available: Callable[[], bool] = rtc_available,
                 launcher: Sequence[str] = ()) -> None:
        self._config = config
        self.timeout_s = timeout_s
        self._python = python or sys.executable
        self._available = available
        #: Put before the probe's command (tests: ``ip netns exec <ns>``, so libwebrtc runs in our namespace).
        self.launcher = tuple(launcher)

    async def run(self, public_url: str) -> MediaResult:
        cfg = self._config(public_url)
        if not self._available():
            return not_measured(public_url, cfg.fallback_reach, cfg.fallback_why,
                                Text("o pacote livekit não está instalado", "the livekit package is not installed"),
                                FIX_INSTALL)
        t0 = time.perf_counter()
        room = probe_room()
        created = await self._room(cfg, room, create=True)
        try:
            report = await self._probe(cfg, room)
        except (OSError, ValueError, TimeoutError) as exc:
            log.warning("media rung could not run: %s", exc)
            return not_measured(public_url, cfg.fallback_reach, cfg.fallback_why,
                                Text(f"o teste de vídeo não rodou ({type(exc).__name__})",
                                     f"the video check did not run ({type(exc).__name__})"), None)
        finally:
            if created:
                await self._room(cfg, room, create=False)  # probe rooms never linger
        return judge(report, cfg.facts, duration_ms=(time.perf_counter() - t0) * 1000, public_url=public_url,
                     finished_at=time.monotonic())

    @staticmethod
    async def _room(cfg: RungConfig, room: str, *, create: bool) -> bool:
        """CreateRoom (so ``room.auto_create: false`` works) / DeleteRoom; False when LiveKit refused."""
        if not cfg.api_url:
            return False
        import aiohttp
        from livekit import api as lkapi

        client = lkapi.LiveKitAPI(http_base(cfg.api_url), cfg.api_key, cfg.api_secret)
        try:
            if create:
                req = lkapi.CreateRoomRequest(name=room, empty_timeout=10, departure_timeout=1, max_participants=2)
                await asyncio.wait_for(client.room.create_room(req), 5)
            else:
                await asyncio.wait_for(client.room.delete_room(lkapi.DeleteRoomRequest(room=room)), 5)
            return True
        except lkapi.TwirpError as exc:
            if not create and exc.code == "not_found":  # LiveKit already closed the empty room
                return True
            log.warning("media rung: %s of probe room failed: %s", "CreateRoom" if create else "DeleteRoom", exc)
            return create
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("media rung: %s of probe room failed: %s", "CreateRoom" if create else "DeleteRoom", exc)
            return create  # a failed create may still be auto-created by the join: try deleting it anyway
        finally:
            await client.aclose()

    async def _probe(self, cfg: RungConfig, room: str) -> ProbeReport:
        from linkpronto.media.probe import probe_tokens

        sub_token, pub_token = probe_tokens(cfg.api_key, cfg.api_secret, room)
        args = {"url": cfg.url, "sub_token": sub_token, "pub_token": pub_token, "timeout_s": self.timeout_s}
        from linkpronto import platform

        # Its own process tree, enrolled in the die-with-the-orchestrator guard like every supervised
        # child: a kill -9 of linkpronto never leaves a probe (or its libwebrtc threads) behind.
        tree = platform.new_process_tree()
        proc = await asyncio.create_subprocess_exec(
            *self.launcher, self._python, "-m", "linkpronto.media.probe",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            **tree.popen_kwargs(),
        )
        tree.attach(proc.pid)
        _lower_priority(proc.pid)  # the probe's encoder must never slow the requests the stack serves
        try:
            out, _ = await asyncio.wait_for(proc.communicate((json.dumps(args) + "\n").encode()),
                                            self.timeout_s * 2 + 10)
        except BaseException:  # a timeout, or the rung cancelled with the stack: the tree goes too
            tree.kill()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        finally:
            tree.release()
        for line in out.decode("utf-8", "replace").splitlines():
            if line.startswith(REPORT_PREFIX):
                return ProbeReport.from_json(json.loads(line[len(REPORT_PREFIX):]))
        raise ValueError(f"the probe exited {proc.returncode} without a report")


def _lower_priority(pid: int) -> None:
    """Below-normal CPU priority for the probe (libwebrtc encodes video): psutil speaks both nice values
    (POSIX) and priority classes (Windows)."""
    import psutil

    with contextlib.suppress(psutil.Error, OSError, ValueError):
        psutil.Process(pid).nice(getattr(psutil, "BELOW_NORMAL_PRIORITY_CLASS", 10))


Run = Callable[[str], Awaitable[MediaResult]]


class MediaKeeper:
    """The rung's own cadence: every ``interval``, at once when ``key()`` changes (public URL, LiveKit
    restarted), sooner after a ``none`` (recovery). Results are kept per public URL."""

    def __init__(self, run: Run, *, interval: float, key: Callable[[], Hashable],
                 public_url: Callable[[], str | None], can_run: Callable[[], bool] = lambda: True,
                 on_change: Callable[[], None] = lambda: None, retry: float = RETRY_AFTER_NONE_S) -> None:
        self._run = run
        self.interval = interval
        self.retry = min(retry, interval)
        self._key = key
        self._public_url = public_url
        self._can_run = can_run
        self._on_change = on_change
        self._latest: MediaResult | None = None
        self._latest_key: Hashable = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.running = False
        self.runs = 0
        self.durations_ms: list[float] = []

    @property
    def latest(self) -> MediaResult | None:
        return self._latest

    def result_for(self, public_url: str | None) -> MediaResult | None:
        """The latest result if it was measured for ``public_url`` and the LiveKit running now."""
        r = self._latest
        if r is None or r.public_url != public_url or self._latest_key != self._safe_key():
            return None
        return r

    def _safe_key(self) -> Hashable:
        try:
            return self._key()
        except Exception:
            return object()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="media-rung")

    def poke(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._latest = None
        self.running = False

    def _due(self, now: float) -> bool:
        r = self._latest
        if r is None or self._latest_key != self._safe_key() or r.public_url != self._public_url():
            return True
        wait = self.interval if r.ok and r.measured else self.retry
        return now - r.finished_at >= wait

    async def _loop(self) -> None:
        while True:
            url = self._public_url()
            if url and self._can_run() and self._due(time.monotonic()):
                with contextlib.suppress(Exception):  # logged in run_once; retried after `retry`
                    await self.run_once(url)
            timeout = self.retry if self._latest is None else min(self.retry, self.interval)
            await wait_set(self._wake, timeout)
            self._wake.clear()

    async def run_once(self, url: str) -> MediaResult:
        key = self._safe_key()
        before = self.result_for(url)
        self.running = True
        try:
            result = await self._run(url)
        except Exception:  # a rung bug must not kill the cadence; the ladder keeps the fallback
            log.exception("media rung failed")
            raise
        finally:
            self.running = False
        self.runs += 1
        self.durations_ms.append(result.duration_ms)
        del self.durations_ms[:-200]
        self._latest, self._latest_key = result, key
        if before is None or (before.reach, before.measured) != (result.reach, result.measured):
            self._on_change()
        return result
