"""``ngrok``: the official ngrok Python SDK, in-process, no binary.

``SessionBuilder().authtoken(...)`` opens the session (its disconnection and heartbeat callbacks feed
our ``disconnected`` / ``reconnected`` events), ``session.http_endpoint()`` (with ``.domain()`` for
the account's fixed dev domain) forwards to the public listener. The SDK reconnects by itself; we only
report it. ngrok's traffic inspector is never enabled (it would record request paths, which carry
link tokens).

Failures are mapped by ngrok's error codes (https://ngrok.com/docs/errors/):
ERR_NGROK_105/106/107/4018 → ``TUNNEL_AUTH``; ERR_NGROK_108 (too many agent sessions) and 334
(the domain is already online elsewhere) → ``TUNNEL_LIMIT``; anything else (offline, DNS, TLS) →
``TUNNEL_UNREACHABLE``. A missing authtoken is ``TUNNEL_AUTH`` before any network call.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar

from linkpronto import __version__
from linkpronto.errors import ConfigInvalid, TunnelAuth, TunnelError, TunnelLimit, TunnelUnreachable
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.tunnels._util import redact
from linkpronto.tunnels.base import (
    TunnelCallback,
    TunnelProvider,
)

if TYPE_CHECKING:
    from linkpronto.config import TunnelSettings

log = logging.getLogger(__name__)

#: Where ngrok's credentials come from (never passed on to other children: supervise/env.py asks here).
AUTHTOKEN_ENV = "NGROK_AUTHTOKEN"
API_KEY_ENV = "NGROK_API_KEY"
CREDENTIAL_ENV = (AUTHTOKEN_ENV, API_KEY_ENV)
#: The free plan's browser warning page ("You are about to visit…"): how to tell it, how to skip it.
#: A request with this header (any value) is let through; a browser never sends it.
SKIP_WARNING_HEADER = {"ngrok-skip-browser-warning": "1"}
WARNING_PAGE_MARKERS = ("ngrok-skip-browser-warning", "You are about to visit")

AUTH_CODES = frozenset({103, 105, 106, 107, 4018})
LIMIT_CODES = frozenset({108, 334})
_CODE_RE = re.compile(r"ERR_NGROK_(\d+)")

AUTHTOKEN_FIX = Text(
    "Copie seu authtoken em https://dashboard.ngrok.com/get-started/your-authtoken e defina "
    "NGROK_AUTHTOKEN (ou tunnel.ngrok_authtoken). Sem conta, use --tunnel cloudflared.",
    "Copy your authtoken from https://dashboard.ngrok.com/get-started/your-authtoken and set "
    "NGROK_AUTHTOKEN (or tunnel.ngrok_authtoken). Without an account, use --tunnel cloudflared.",
)

NGROK_TRADEOFF = Text(
    "Precisa de conta ngrok (grátis); URL fixa com o domínio dev da conta; no plano grátis o navegador "
    "vê uma página de aviso antes do HTML; não leva a mídia para aparelhos fora da rede.",
    "Needs an ngrok account (free); fixed URL with the account's dev domain; on the free plan browsers "
    "see a warning page before the HTML; does not carry media to devices outside the network.",
)


def ngrok_error_codes(text: str) -> list[int]:
    return [int(c) for c in _CODE_RE.findall(text)]


def map_ngrok_failure(text: str, *, secrets: tuple[str, ...] = (), domain: str = "") -> TunnelError:
    """The linkpronto error for an ngrok failure described by ``text`` (SDK exception or agent log)."""
    detail = redact(text, secrets)[:500]
    codes = ngrok_error_codes(text)
    lowered = text.lower()
    if any(c in LIMIT_CODES for c in codes):
        if 334 in codes:
            return TunnelLimit(
                Text(
                    f"O domínio ngrok {domain or ''} já está em uso por outro ngrok (ERR_NGROK_334).",
                    f"The ngrok domain {domain or ''} is already in use by another ngrok (ERR_NGROK_334).",
                ),
                fix=Text(
                    "Feche o outro ngrok que usa esse domínio, ou use --tunnel ngrok-agent para "
                    "aproveitar o agente que já está rodando.",
                    "Close the other ngrok using that domain, or use --tunnel ngrok-agent to reuse the "
                    "agent that is already running.",
                ),
                detail=detail,
            )
        return TunnelLimit(
            Text(
                "Sua conta ngrok já tem o máximo de sessões abertas (ERR_NGROK_108): outro ngrok está "
                "rodando com a mesma conta.",
                "Your ngrok account already has the maximum number of open sessions (ERR_NGROK_108): "
                "another ngrok is running with the same account.",
            ),
            fix=Text(
                "Feche o outro ngrok (veja https://dashboard.ngrok.com/agents), ou use --tunnel ngrok-agent "
                "para aproveitar o que já está rodando, ou --tunnel cloudflared.",
                "Close the other ngrok (see https://dashboard.ngrok.com/agents), or use --tunnel ngrok-agent "
                "to reuse the one already running, or --tunnel cloudflared.",
            ),
            detail=detail,
        )
    if any(c in AUTH_CODES for c in codes) or "authtoken" in lowered or "authentication failed" in lowered:
        return TunnelAuth(
            Text(
                "O ngrok recusou o authtoken configurado.",
                "ngrok refused the configured authtoken.",
            ),
            fix=AUTHTOKEN_FIX,
            detail=detail,
        )
    return TunnelUnreachable(
        Text(
            "Não consegui conectar ao ngrok (sem internet, ou o serviço está fora do ar).",
            "Could not connect to ngrok (no internet, or the service is down).",
        ),
        fix=Text(
            "Verifique a conexão com a internet; o linkpronto tenta de novo sozinho. Enquanto isso, "
            "--tunnel cloudflared ou --tunnel ssh são alternativas.",
            "Check the internet connection; linkpronto retries by itself. Meanwhile, --tunnel cloudflared "
            "or --tunnel ssh are alternatives.",
        ),
        detail=detail,
    )


def _exception_text(exc: BaseException) -> str:
    parts = [str(a) for a in getattr(exc, "args", ()) if a is not None]
    return " | ".join(parts) or type(exc).__name__


class NgrokTunnel(TunnelProvider):
    name = "ngrok"
    client_ip_header = "X-Forwarded-For"  # ngrok's edge appends the client (ngrok.com/docs: HTTP headers)
    tradeoff = NGROK_TRADEOFF
    #: Where the SDK dials; None is ngrok's own service. Tests point it at a closed local port.
    default_server_addr: ClassVar[str | None] = None
    connect_timeout_s: ClassVar[float] = 20.0

    def __init__(
        self,
        local_port: int,
        authtoken: str,
        domain: str = "",
        on_event: TunnelCallback | None = None,
        *,
        server_addr: str | None = None,
    ) -> None:
        super().__init__(local_port, on_event)
        self._authtoken = authtoken.strip()
        self.domain = domain.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        self._server_addr = server_addr if server_addr is not None else self.default_server_addr
        self._session: Any = None
        self._listener: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _open(self) -> str:
        if not self._authtoken:
            raise TunnelAuth(
                Text(
                    "O ngrok precisa de um authtoken e nenhum foi configurado.",
                    "ngrok needs an authtoken and none is configured.",
                ),
                fix=AUTHTOKEN_FIX,
            )
        import ngrok  # the native extension loads only when this provider is used

        self._loop = asyncio.get_running_loop()
        builder = (
            ngrok.SessionBuilder()
            .authtoken(self._authtoken)
            .client_info("linkpronto", __version__)
            .handle_disconnection(self._on_disconnection)
            .handle_heartbeat(self._on_heartbeat)
        )
        if self._server_addr:
            builder = builder.server_addr(self._server_addr)
        try:
            self._session = await asyncio.wait_for(builder.connect(), self.connect_timeout_s)
            endpoint = self._session.http_endpoint()
            if self.domain:
                endpoint = endpoint.domain(self.domain)
            self._listener = await asyncio.wait_for(
                endpoint.listen_and_forward(f"http://127.0.0.1:{self.local_port}"), self.connect_timeout_s
            )
        except TimeoutError as exc:
            await self._close()
            raise TunnelUnreachable(
                Text(
                    f"O ngrok não respondeu em {self.connect_timeout_s:.0f} s.",
                    f"ngrok did not answer within {self.connect_timeout_s:.0f} s.",
                ),
                fix=Text(
                    "Verifique a conexão com a internet ou use --tunnel cloudflared.",
                    "Check the internet connection or use --tunnel cloudflared.",
                ),
            ) from exc
        except (ValueError, RuntimeError, OSError) as exc:  # the SDK raises ValueError(msg, cause, code)
            await self._close()
            raise map_ngrok_failure(
                _exception_text(exc), secrets=(self._authtoken,), domain=self.domain
            ) from exc
        url = str(self._listener.url())
        self.https = url.startswith("https://")
        return url

    async def _close(self) -> None:
        listener, session = self._listener, self._session
        self._listener = self._session = None
        try:
            if listener is not None:
                await asyncio.wait_for(listener.close(), 5.0)
            if session is not None:
                await asyncio.wait_for(session.close(), 5.0)
        except (TimeoutError, ValueError, RuntimeError, OSError) as exc:
            log.warning("ngrok: closing the session failed: %s", redact(str(exc), (self._authtoken,)))

    # -- SDK callbacks (called from the SDK's own threads) ------------------------------------
    def _on_disconnection(self, addr: str, error: str) -> None:
        self._call_in_loop(self._disconnected_event, redact(str(error), (self._authtoken,)))

    def _on_heartbeat(self, latency_ms: int) -> None:
        self._call_in_loop(self._heartbeat_event)

    def _call_in_loop(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("ngrok: event after the loop closed")

    def _disconnected_event(self, error: str) -> None:
        if self._listener is not None:
            self._disconnected(error)

    def _heartbeat_event(self) -> None:
        if self._listener is None:
            return
        url = str(self._listener.url()).rstrip("/")
        if self._down or self._status.state is PartState.READY:
            self._reconnected(url)


def unmet_requirements(t: TunnelSettings) -> list[ConfigInvalid]:
    """What ``doctor`` reports before ``up`` tries ngrok: the authtoken it cannot start without."""
    if t.ngrok_authtoken.get_secret_value():
        return []
    return [ConfigInvalid(
        Text("O ngrok precisa de um authtoken.", "ngrok needs an authtoken."),
        fix=Text(
            f"Defina {AUTHTOKEN_ENV} (dashboard.ngrok.com > Your Authtoken) ou use --tunnel cloudflared.",
            f"Set {AUTHTOKEN_ENV} (dashboard.ngrok.com > Your Authtoken) or use --tunnel cloudflared.",
        ),
    )]
