"""``cloudflared``: a Cloudflare quick tunnel (no account, random URL) or a named tunnel (fixed hostname).

Quick tunnel::

    cloudflared tunnel --no-autoupdate --metrics 127.0.0.1:<free port> --url http://127.0.0.1:<public_port>

Named tunnel (created in the Cloudflare dashboard, whose public hostname points at
``http://127.0.0.1:<public_port>``)::

    cloudflared tunnel --no-autoupdate --metrics 127.0.0.1:<free port> run      (TUNNEL_TOKEN in the env)

The token goes through the environment (``TUNNEL_TOKEN``, which cloudflared reads), never argv, so it
does not show in the process list; it is also redacted from the captured output.

cloudflared's metrics server tells us the rest (``metrics/readiness.go`` and the quick-tunnel handler
in github.com/cloudflare/cloudflared): ``GET /ready`` answers 200 ``{"status": 200,
"readyConnections": N}`` once at least one connection to the edge is up (503 and 0 before), and
``GET /quicktunnel`` answers ``{"hostname": "<random>.trycloudflare.com"}``. ``/ready`` is the
supervisor's readiness probe; afterwards a watcher polls both every ``poll_interval_s`` seconds and
reports ``disconnected`` / ``reconnected`` (cloudflared reconnects to the edge by itself) and
``url_changed`` (a restarted quick tunnel gets a new hostname). A crashed cloudflared is restarted by
the supervisor with capped back-off. cloudflared does not log request paths at its default level.

The binary: ``tunnel.cloudflared_binary``, else ``cloudflared`` on PATH, else
``<data_dir>/bin/cloudflared[.exe]``; when missing and installing is allowed, it is installed there.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import httpx

from linkpronto.components import PartStatus
from linkpronto.errors import (
    BinaryNotFound,
    ConfigInvalid,
    TunnelAuth,
    TunnelError,
    TunnelLimit,
    TunnelUnreachable,
)
from linkpronto.i18n import Text
from linkpronto.platform import executable_name
from linkpronto.schema import PartState
from linkpronto.supervise import ManagedProcess
from linkpronto.supervise.spec import HttpProbe, ProcessSpec, RestartPolicy
from linkpronto.tls import client_context
from linkpronto.tunnels._util import TUNNEL_RESTART, ProcessTunnel, first_run, free_port, get_json
from linkpronto.tunnels.base import (
    TunnelCallback,
)

log = logging.getLogger(__name__)


#: Where a named tunnel's credentials come from (cloudflared reads TUNNEL_TOKEN itself).
TOKEN_ENV = "TUNNEL_TOKEN"
CREDENTIAL_ENV = (TOKEN_ENV, "CLOUDFLARED_TOKEN", "TUNNEL_ORIGIN_CERT")
#: A Cloudflare browser challenge standing in front of the page.
WARNING_PAGE_MARKERS = ("cf-browser-verification",)
BINARY = "cloudflared"

QUICK_TRADEOFF = Text(
    "Sem conta e sem configuração, com HTTPS; mas a URL muda a cada reinício, não transmite SSE e não leva "
    "a mídia para aparelhos fora da rede.",
    "No account and no setup, with HTTPS; but the URL changes on every restart, it does not stream SSE, "
    "and it does not carry media to devices outside the network.",
)
NAMED_TRADEOFF = Text(
    "Precisa de conta Cloudflare e domínio próprio; URL fixa com HTTPS; não leva a mídia para aparelhos "
    "fora da rede.",
    "Needs a Cloudflare account and your own domain; fixed HTTPS URL; does not carry media to devices "
    "outside the network.",
)

_INSTALL_FIX = Text(
    "Instale com: linkpronto install cloudflared (ou indique o programa em tunnel.cloudflared_binary).",
    "Install it with: linkpronto install cloudflared (or point tunnel.cloudflared_binary at it).",
)


def exe_name() -> str:
    return executable_name(BINARY)


def find_cloudflared(configured: str = "", bin_dir: Path | None = None) -> Path | None:
    """``configured`` (a path, or a name on PATH), else ``cloudflared`` on PATH, else ``bin_dir``."""
    if configured:
        path = Path(configured)
        if path.is_file():
            return path
        found = shutil.which(configured)
        return Path(found) if found else None
    found = shutil.which("cloudflared")
    if found:
        return Path(found)
    if bin_dir is not None:
        candidate = bin_dir / exe_name()
        if candidate.is_file():
            return candidate
    return None


class CloudflaredTunnel(ProcessTunnel):
    name = "cloudflared"
    client_ip_header = "CF-Connecting-IP"  # set (overwritten) by Cloudflare's edge
    tradeoff = QUICK_TRADEOFF

    def __init__(
        self,
        local_port: int,
        on_event: TunnelCallback | None = None,
        *,
        token: str = "",
        hostname: str = "",
        binary: str = "",
        command: Sequence[str] | None = None,
        bin_dir: Path | None = None,
        install_allowed: bool = False,
        restart: RestartPolicy | None = None,
        open_timeout_s: float = 45.0,
        poll_interval_s: float = 2.0,
    ) -> None:
        super().__init__(local_port, on_event)
        self.token = token.strip()
        self.hostname = hostname.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
        self.binary = binary
        self.command = tuple(command) if command else None
        self.bin_dir = bin_dir
        self.install_allowed = install_allowed
        self.restart = restart or TUNNEL_RESTART
        self.open_timeout_s = open_timeout_s
        self.poll_interval_s = poll_interval_s
        self.metrics_addr = ""
        if self.named:
            self._status.tradeoff = NAMED_TRADEOFF
        self._need_url_check = False

    @property
    def named(self) -> bool:
        return bool(self.token)

    # -- locating / installing ---------------------------------------------------------------
    async def resolve_command(self) -> tuple[str, ...]:
        if self.command:
            return self.command
        found = find_cloudflared(self.binary, self.bin_dir)
        if found is not None:
            return (str(found),)
        if self.binary:
            raise BinaryNotFound(
                Text(
                    f"O cloudflared indicado em tunnel.cloudflared_binary não existe: {self.binary}",
                    f"The cloudflared given in tunnel.cloudflared_binary does not exist: {self.binary}",
                ),
                fix=_INSTALL_FIX,
            )
        if not self.install_allowed or self.bin_dir is None:
            raise BinaryNotFound(
                Text("O cloudflared não está instalado.", "cloudflared is not installed."),
                fix=_INSTALL_FIX,
            )
        from linkpronto.install.cloudflared import install_cloudflared

        log.info("cloudflared not found: installing it into %s", self.bin_dir)
        path = await install_cloudflared(self.bin_dir, "latest")
        return (str(path),)

    def argv(self, command: Sequence[str], metrics_addr: str) -> tuple[str, ...]:
        base = (*command, "tunnel", "--no-autoupdate", "--metrics", metrics_addr)
        if self.named:
            return (*base, "run")
        return (*base, "--url", f"http://127.0.0.1:{self.local_port}")

    # -- open / close ------------------------------------------------------------------------
    async def _open(self) -> str:
        if self.named and not self.hostname:
            raise ConfigInvalid(
                Text(
                    "O túnel nomeado do cloudflared precisa do endereço público em tunnel.cloudflared_hostname.",
                    "The named cloudflared tunnel needs its public hostname in tunnel.cloudflared_hostname.",
                ),
                fix=Text(
                    "Defina tunnel.cloudflared_hostname (ex.: consultas.suaclinica.com.br), o mesmo "
                    "configurado no painel da Cloudflare, apontando para http://127.0.0.1:"
                    f"{self.local_port}.",
                    "Set tunnel.cloudflared_hostname (e.g. consultas.yourclinic.com), the one configured "
                    f"in the Cloudflare dashboard, pointing at http://127.0.0.1:{self.local_port}.",
                ),
            )
        command = await self.resolve_command()
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        metrics = f"http://{self.metrics_addr}"
        env = {TOKEN_ENV: self.token} if self.named else None
        spec = ProcessSpec(
            name="cloudflared",
            argv=self.argv(command, self.metrics_addr),
            env=env,
            readiness=HttpProbe(f"{metrics}/ready", expect_status=200, period_s=0.2, timeout_s=1.0),
            restart=self.restart,
            start_timeout_s=self.open_timeout_s,
            error_code=TunnelUnreachable.code,
            redact=(self.token,) if self.token else (),
        )
        self._client = httpx.AsyncClient(timeout=2.0, trust_env=False, verify=client_context())
        proc = ManagedProcess(spec)
        self._proc = proc
        self._down = False
        try:
            await proc.start()
            if await first_run(proc, self.open_timeout_s) is not PartState.READY:
                raise self._start_error(proc)
            url = await self._read_url(deadline_s=self.open_timeout_s)
        except BaseException:
            await self._teardown()
            raise
        self._unsubscribe = proc.subscribe(self._on_proc_change)
        self._watcher = asyncio.create_task(self._watch(), name="cloudflared-watch")
        self.https = url.startswith("https://")
        return url


    # -- URL ---------------------------------------------------------------------------------
    async def _quick_hostname(self) -> str:
        assert self._client is not None
        status, data = await get_json(self._client, f"http://{self.metrics_addr}/quicktunnel")
        if status == 200 and isinstance(data, dict):
            return str(data.get("hostname") or "").strip()
        return ""

    async def _read_url(self, deadline_s: float) -> str:
        if self.named:
            return f"https://{self.hostname}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_s
        last = ""
        while True:
            try:
                hostname = await self._quick_hostname()
            except httpx.HTTPError as exc:
                hostname, last = "", str(exc) or type(exc).__name__
            if hostname:
                return f"https://{hostname}"
            if loop.time() >= deadline:
                raise TunnelUnreachable(
                    Text(
                        "O cloudflared conectou, mas não informou o endereço do túnel rápido.",
                        "cloudflared connected but did not report the quick tunnel's address.",
                    ),
                    fix=Text(
                        "Atualize o cloudflared (linkpronto install cloudflared) e tente de novo.",
                        "Update cloudflared (linkpronto install cloudflared) and try again.",
                    ),
                    detail=last or "GET /quicktunnel returned no hostname",
                )
            await asyncio.sleep(0.2)

    # -- watching ----------------------------------------------------------------------------
    def _on_proc_change(self, _status: PartStatus) -> None:
        proc = self._proc
        if proc is None:
            return
        state = proc.state
        if state is PartState.FAILED:
            err = proc.error
            self._failed(self._start_error(proc) if not isinstance(err, TunnelError) else err)
        elif state in (PartState.RESTARTING, PartState.STARTING, PartState.UNHEALTHY):
            self._need_url_check = True
            self._disconnected(proc.reason_text)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            proc = self._proc
            if proc is None or self._client is None:
                return
            if proc.state is not PartState.READY:
                continue
            try:
                status, data = await get_json(self._client, f"http://{self.metrics_addr}/ready")
                connected = status == 200 and isinstance(data, dict) and int(data.get("readyConnections", 0)) > 0
                hostname = await self._quick_hostname() if connected and not self.named else ""
            except httpx.HTTPError as exc:
                self._disconnected(Text(
                    f"o servidor de métricas não respondeu: {exc or type(exc).__name__}",
                    f"metrics server did not answer: {exc or type(exc).__name__}",
                ))
                continue
            if not connected:
                self._disconnected(Text("sem conexão com a borda da Cloudflare", "no connection to Cloudflare's edge"))
                continue
            url = f"https://{hostname}" if hostname else (f"https://{self.hostname}" if self.named else "")
            self._reconnected(url or None)

    # -- errors ------------------------------------------------------------------------------
    def _start_error(self, proc: ManagedProcess) -> TunnelError:
        tail = "\n".join(line for line in proc.log_tail()[-10:])
        lowered = tail.lower()
        auth_markers = ("unauthorized", "invalid tunnel secret", "provided tunnel token is not valid")
        if self.named and any(marker in lowered for marker in auth_markers):
            return TunnelAuth(
                Text("A Cloudflare recusou o token do túnel nomeado.",
                     "Cloudflare refused the named tunnel's token."),
                fix=Text(
                    "Copie de novo o token do túnel no painel Zero Trust da Cloudflare e defina "
                    "TUNNEL_TOKEN (ou tunnel.cloudflared_token).",
                    "Copy the tunnel token again from Cloudflare's Zero Trust dashboard and set "
                    "TUNNEL_TOKEN (or tunnel.cloudflared_token).",
                ),
                detail=tail,
            )
        if "429" in tail or "too many requests" in lowered:
            return TunnelLimit(
                Text("A Cloudflare limitou a criação de túneis rápidos (muitas tentativas).",
                     "Cloudflare rate-limited quick tunnel creation (too many attempts)."),
                fix=Text("Espere alguns minutos ou use um túnel nomeado (tunnel.cloudflared_token).",
                         "Wait a few minutes or use a named tunnel (tunnel.cloudflared_token)."),
                detail=tail,
            )
        return TunnelUnreachable(
            Text(
                "O cloudflared não conseguiu conectar à Cloudflare.",
                "cloudflared could not connect to Cloudflare.",
            ),
            fix=Text(
                "Verifique a internet (e se um firewall bloqueia a porta 7844); o linkpronto tenta de novo.",
                "Check the internet connection (and whether a firewall blocks port 7844); linkpronto retries.",
            ),
            detail=(proc.reason + ("\n" + tail if tail else "")).strip(),
        )
