"""``linkpronto serve``: the production mode, one of several interchangeable instances.

Nothing is supervised: LiveKit is ``external`` (a LiveKit server or cluster you run) or ``cloud``;
the public address is ``static`` (your domain, served by your own proxy or load balancer, e.g.
Caddy); the user's app, if any, runs on its own. The store and the limiter come from URLs
(``server.database_url`` = PostgreSQL, ``server.rate_limit_storage`` = Redis) and the secrets from
the store (:mod:`linkpronto.deployment`), so every instance proves the same deployment and serves
any link. The admin API listens where ``--admin-bind`` says and always requires the admin token.

It runs the very same orchestrator as ``up`` (:func:`linkpronto.orchestrator.serve`), with
``deployment=True``; this module only checks the settings fit production and prints state changes
as log lines.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from linkpronto import console, redaction
from linkpronto.config import Settings
from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.orchestrator import Running, serve

REFRESH_S = 0.5


def split_bind(value: str | None, what: str) -> tuple[str | None, int | None]:
    """``"0.0.0.0:7800"`` → ("0.0.0.0", 7800); ``"10.0.0.5"`` → ("10.0.0.5", None); ``"[::]:7800"`` too."""
    if not value:
        return None, None
    host, port = value, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        port_n = int(port) if port else None
    except ValueError as exc:
        raise _bad(what, value) from exc
    if port_n is not None and not 0 < port_n < 65536:
        raise _bad(what, value)
    return host or None, port_n


def _bad(what: str, value: str) -> ConfigInvalid:
    return ConfigInvalid(
        Text(f"--{what} {value!r} não é um endereço válido.", f"--{what} {value!r} is not a valid address."),
        fix=Text(
            f"Use HOST ou HOST:PORTA, por exemplo --{what} 0.0.0.0:7800.",
            f"Use HOST or HOST:PORT, for example --{what} 0.0.0.0:7800.",
        ),
    )


def check_production(settings: Settings) -> None:
    """Refuse what ``serve`` cannot do: supervise anything, or run without a fixed public address."""
    problems: list[tuple[str, Text]] = []
    if settings.tunnel.provider != "static" or not settings.tunnel.static_url:
        problems.append(
            (
                "tunnel.static_url",
                Text(
                    "o endereço público fixo (--public-url https://consultas.suaclinica.com.br)",
                    "the fixed public address (--public-url https://consultas.yourclinic.com)",
                ),
            )
        )
    if settings.livekit.mode not in ("external", "cloud"):
        problems.append(
            (
                "livekit.mode",
                Text(
                    "LiveKit externo ou cloud (--livekit external|cloud, com LIVEKIT_URL e as chaves)",
                    "an external or cloud LiveKit (--livekit external|cloud, with LIVEKIT_URL and the keys)",
                ),
            )
        )
    elif not (settings.livekit.api_key and settings.livekit.api_secret.get_secret_value()):
        problems.append(
            (
                "livekit.api_key",
                Text(
                    "as chaves do LiveKit (LIVEKIT_API_KEY e LIVEKIT_API_SECRET)",
                    "the LiveKit keys (LIVEKIT_API_KEY and LIVEKIT_API_SECRET)",
                ),
            )
        )
    if settings.app.command:
        problems.append(
            (
                "app.command",
                Text(
                    "nenhum app supervisionado (rode o seu app à parte e use app.port)",
                    "no supervised app (run your app on its own and use app.port)",
                ),
            )
        )
    if not problems:
        return
    keys = [k for k, _ in problems]
    raise ConfigInvalid(
        Text(
            "linkpronto serve precisa de: " + "; ".join(t.pt for _, t in problems),
            "linkpronto serve needs: " + "; ".join(t.en for _, t in problems),
        ),
        fix=Text(
            "Veja a seção 'Produção: várias instâncias' do README e o exemplo em deploy/.",
            "See the README's 'Production: several instances' section and the example in deploy/.",
        ),
        keys=keys,
    )


def production_settings(settings: Settings) -> Settings:
    """``serve`` never installs, never stops when idle, and always uses the static address."""
    settings.stack.install = False
    settings.stack.mode = "always-on"
    if settings.tunnel.static_url:
        settings.tunnel.provider = "static"
    check_production(settings)
    return settings


def configure_logging() -> None:
    """``serve`` logs to stderr at INFO; httpx/httpcore (which log every request URL at INFO, e.g.
    ``/rtc/validate?access_token=<JWT>``) at WARNING; and every record is redacted (issue 19, 12)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    redaction.install()


def run_serve(settings: Settings) -> int:
    configure_logging()
    return asyncio.run(_serve(production_settings(settings)))


async def _serve(settings: Settings) -> int:
    started: asyncio.Future[Running] = asyncio.get_running_loop().create_future()

    def on_started(running: Running) -> None:
        if not started.done():
            started.set_result(running)

    server = asyncio.create_task(serve(settings, on_started=on_started, deployment=True))
    waiter = asyncio.ensure_future(started)
    pending: list[asyncio.Future[Any]] = [server, waiter]
    done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        waiter.cancel()
        return server.result()
    running = waiter.result()
    console.say(
        Text(
            f"linkpronto serve no ar: {settings.tunnel.static_url}\n  API de admin: {running.admin_url} "
            f"(token em {running.admin_token_path})\n  Escuta pública: porta {running.public_port}",
            f"linkpronto serve is up: {settings.tunnel.static_url}\n  Admin API: {running.admin_url} "
            f"(token in {running.admin_token_path})\n  Public listener: port {running.public_port}",
        ).get()
    )
    last = ""
    while not server.done():
        status: dict[str, Any] = running.stack.status_json()
        codes = ",".join(p["code"] for p in status.get("problems", []))
        line = f"state={status['state']} reason={status.get('reason', '')} problems={codes}"
        if line != last:
            console.say(line)
            last = line
        await asyncio.wait({server}, timeout=REFRESH_S)
    return server.result()
