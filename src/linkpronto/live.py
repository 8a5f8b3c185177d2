"""Glue between the CLI and the orchestrator: run ``up`` with a live status view, install binaries."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from rich.live import Live

from linkpronto import console
from linkpronto.config import Settings
from linkpronto.i18n import Text
from linkpronto.orchestrator import Running, serve
from linkpronto.schema import StackState
from linkpronto.web.session import open_dashboard

REFRESH_S = 0.5


def run_up(settings: Settings) -> int:
    return asyncio.run(_up(settings))


async def _up(settings: Settings) -> int:
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()

    def on_started(running: Running) -> None:
        if not started.done():
            started.set_result(running)

    server = asyncio.create_task(
        serve(settings, on_started=on_started)
    )
    waiter = asyncio.ensure_future(started)
    pending: list[asyncio.Future[Any]] = [server, waiter]
    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        waiter.cancel()
        return server.result()  # raises the LinkprontoError that stopped it
    running = waiter.result()
    dashboard = running.dashboard_url or running.admin_url
    console.say(
        Text(
            f"linkpronto no ar.\n  Painel (só neste computador): {dashboard}\n"
            f"  Escuta pública: porta {running.public_port}\n  Token de admin: {running.admin_token_path}\n"
            "  Ctrl+C para parar.",
            f"linkpronto is up.\n  Dashboard (this computer only): {dashboard}\n"
            f"  Public listener: port {running.public_port}\n  Admin token: {running.admin_token_path}\n"
            "  Ctrl+C to stop.",
        ).get()
    )
    open_dashboard(dashboard)
    shown_ready_url: str | None = None
    interactive = sys.stdout.isatty()
    # The children's output (the app's first of all), each line prefixed with its name.
    unsubscribe = running.stack.output.subscribe(lambda item: console.print_child_line(item.name, item.line))
    try:
        return await _watch(running, server, interactive, shown_ready_url)
    finally:
        unsubscribe()


async def _watch(running: Running, server: asyncio.Task[int], interactive: bool, shown_ready_url: str | None) -> int:
    if interactive:
        # No auto-refresh thread: Rich positions the cursor under its lock but writes later, so a
        # refresh from its thread racing a child's line printed here overwrote lines (the Ready
        # panel's lower half, seen under CI load). Every write happens on this loop's thread.
        with Live(
            console.status_renderable(running.stack.status()),
            console=console.out,
            transient=False,
            auto_refresh=False,
        ) as live:
            while not server.done():
                status = running.stack.status()
                live.update(console.status_renderable(status), refresh=True)
                url = status.public_url
                if status.state is StackState.READY and url and url != shown_ready_url:
                    shown_ready_url = url
                    live.console.print(console.ready_panel(url))
                await asyncio.wait({server}, timeout=REFRESH_S)
    else:
        last = ""
        while not server.done():
            status = running.stack.status()
            url = status.public_url
            line = f"state={status.state.value} public_url={url} reason={status.reason}"
            if line != last:
                console.say(line)
                last = line
            if status.state is StackState.READY and url and url != shown_ready_url:
                shown_ready_url = url
                console.out.print(console.ready_panel(url))
            await asyncio.wait({server}, timeout=REFRESH_S)
    return server.result()


def install_binary(settings: Settings, what: str, version: str | None) -> Path:
    bin_dir = settings.data_dir / "bin"

    async def go() -> Path:
        from linkpronto.install.common import mirrored

        with console.download_progress(what) as progress:
            task = progress.add_task(what, total=None)

            def cb(done: int, total: int | None) -> None:
                progress.update(task, completed=done, total=total)

            if what == "livekit":
                from linkpronto.install.livekit import DEFAULT_BASE_URL, install_livekit

                base = mirrored(DEFAULT_BASE_URL, settings.stack.download_mirror)
                return await install_livekit(
                    bin_dir, version or settings.livekit.version, base_url=base, progress=cb
                )
            from linkpronto.install.cloudflared import DEFAULT_BASE_URL as CF_BASE
            from linkpronto.install.cloudflared import install_cloudflared

            return await install_cloudflared(
                bin_dir, version or "latest", base_url=mirrored(CF_BASE, settings.stack.download_mirror), progress=cb
            )

    return asyncio.run(go())
