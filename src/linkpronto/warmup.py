"""A dev server's first compile, taken out of the first link's way.

``next dev`` compiles a page the first time it is asked for it: the first answer of the link route can
take 5–20 s, the next ones a few milliseconds. Without help, the verification ladder asks for it only
once the tunnel is open, and its steady-state timeout (``verify.CHECK_TIMEOUT_S``) gives up in the
middle of the compile — two failed rounds before the first ready link (issue 9).

So, as soon as the app's port opens (its readiness probe passes, usually long before the tunnel is
open), :class:`AppWarmup` asks the app, on loopback, for its health path and its link route with the
probe link, with a first-compile budget (:data:`FIRST_COMPILE_BUDGET_S`) separate from the steady-state
timeout. Until that warm-up answered for the current app process, the ladder's app rungs get the same
budget (:attr:`AppWarmup.budget_s`); afterwards they are back to the steady-state timeout. When the
warm-up answers, ``on_warm`` re-runs the ladder at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import httpx

from linkpronto.components import Part, PartStatus
from linkpronto.tls import client_context

log = logging.getLogger(__name__)

FIRST_COMPILE_BUDGET_S = 90.0
STEADY_TIMEOUT_S = 5.0


class AppWarmup:
    def __init__(self, *, steady_s: float = STEADY_TIMEOUT_S, first_s: float = FIRST_COMPILE_BUDGET_S) -> None:
        self.steady_s = steady_s
        self.first_s = first_s
        self._warm_pid: int | None = None
        self._current_pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.last_warm_s: float | None = None

    @property
    def budget_s(self) -> float:
        """The timeout for the app's rungs: the first-compile budget until the current process warmed."""
        if self._current_pid is not None and self._warm_pid != self._current_pid:
            return self.first_s
        return self.steady_s

    def watch(
        self, process: Part, app_url: str, paths: list[str], on_warm: Callable[[], None]
    ) -> Callable[[], None]:
        """Warm ``paths`` on ``app_url`` each time ``process`` comes up with a new pid."""

        def changed(st: PartStatus) -> None:
            if st.pid is None:
                return
            self._current_pid = st.pid
            if not st.state.is_up or st.pid == self._warm_pid:
                return
            if self._task is not None and not self._task.done():
                return
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to warm
                self._task = asyncio.get_running_loop().create_task(
                    self._warm(st.pid, app_url, paths, on_warm), name="app-warmup"
                )

        return process.subscribe(changed)

    async def _warm(self, pid: int, app_url: str, paths: list[str], on_warm: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with httpx.AsyncClient(timeout=self.first_s, trust_env=False, verify=client_context()) as client:

            async def one(path: str) -> None:
                with contextlib.suppress(httpx.HTTPError, OSError):
                    await client.get(app_url + path, headers={"Accept": "text/html"})

            await asyncio.gather(*(one(p) for p in dict.fromkeys(paths)))
        self.last_warm_s = loop.time() - t0
        log.info("app warmed up in %.1f s (%s)", self.last_warm_s, ", ".join(paths))
        self._warm_pid = pid
        on_warm()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


def warm_paths(health_path: str, link_path: str, probe_token: str) -> list[str]:
    """The app's health path, and its link route with the probe link when the route is the app's."""
    from linkpronto import paths as own

    out = [health_path]
    if not own.is_own(link_path.split("{token}", 1)[0] or "/"):
        out.append(link_path.replace("{token}", probe_token))
    return out


def app_check_path(health_path: str, link_path: str, probe_token: str) -> str:
    """The path of the ladder's ``app`` rung. With the default ``/`` and a link route that is the app's,
    it is the link route's probe link: proving the app answers then costs ``next dev`` no extra compile
    of a page the patient never opens (its ``/``), only the one the first link needs anyway."""
    paths_ = warm_paths(health_path, link_path, probe_token)
    return paths_[1] if health_path == "/" and len(paths_) > 1 else health_path
