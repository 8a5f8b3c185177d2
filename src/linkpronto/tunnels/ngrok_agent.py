"""``ngrok-agent``: use an ngrok agent that is already running, or run ``ngrok http`` ourselves.

First the agent's local API (``tunnel.ngrok_agent_api``, default ``http://127.0.0.1:4040``) is asked
for an endpoint that forwards to our public port: ``GET /api/endpoints`` (agents 3.16+: ``{"endpoints":
[{"url", "upstream": {"url"}}]}``), falling back to ``GET /api/tunnels`` (``{"tunnels": [{"public_url",
"config": {"addr"}}]}``) when that answers 404 (https://ngrok.com/docs/agent/api/). Found: the agent
is *adopted* (never stopped by us) and watched. Not found: ``ngrok http http://127.0.0.1:<port>
--log stdout --log-format logfmt --inspect=false`` runs as a supervised child; its log says where its
own API listens (``msg="starting web service" obj=web addr=127.0.0.1:4041``) and the URL is read
from that API the same way. ``--inspect=false`` keeps ngrok from recording requests (their paths
carry link tokens); the authtoken goes through ``NGROK_AUTHTOKEN`` in the child's environment.

A watcher polls the API every ``poll_interval_s`` seconds and reports ``disconnected`` (the endpoint
or the agent is gone), ``reconnected`` and ``url_changed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from linkpronto.components import PartStatus
from linkpronto.errors import TunnelAuth, TunnelError, TunnelUnreachable
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.supervise import ManagedProcess
from linkpronto.supervise.spec import LogProbe, ProcessSpec, RestartPolicy
from linkpronto.tls import client_context
from linkpronto.tunnels._util import LOCAL_HOSTS, TUNNEL_RESTART, ProcessTunnel, first_run, get_json, url_port
from linkpronto.tunnels.base import (
    TunnelCallback,
)
from linkpronto.tunnels.ngrok import AUTHTOKEN_ENV, AUTHTOKEN_FIX, NGROK_TRADEOFF, map_ngrok_failure

log = logging.getLogger(__name__)

DEFAULT_API = "http://127.0.0.1:4040"
_WEB_ADDR_RE = re.compile(r'msg="starting web service".*?\baddr=(\S+)')
_STARTED_RE = r'msg="started tunnel"'
_ERROR_RE = re.compile(r"ERR_NGROK_\d+|\berr=|^ERROR:|lvl=(eror|crit)")



@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    url: str
    upstream: str
    name: str = ""


def parse_endpoints(data: Any) -> list[AgentEndpoint]:
    """Endpoints from either API shape (``/api/endpoints`` or ``/api/tunnels``)."""
    if not isinstance(data, dict):
        return []
    items = data.get("endpoints")
    if items is None:
        items = data.get("tunnels")
    out: list[AgentEndpoint] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        url = item.get("url") or item.get("public_url") or ""
        upstream_obj = item.get("upstream")
        config = item.get("config")
        upstream = (
            (upstream_obj.get("url") if isinstance(upstream_obj, dict) else None)
            or item.get("upstream_url")
            or (config.get("addr") if isinstance(config, dict) else None)
            or ""
        )
        if isinstance(url, str) and isinstance(upstream, str) and url:
            out.append(AgentEndpoint(url.rstrip("/"), upstream, str(item.get("name") or "")))
    return out


def pick_endpoint(endpoints: Sequence[AgentEndpoint], local_port: int) -> AgentEndpoint | None:
    """The endpoint forwarding to ``local_port`` on this machine, https first."""
    matches = []
    for ep in endpoints:
        host, port = url_port(ep.upstream)
        if port == local_port and host.lower() in LOCAL_HOSTS and ep.url.startswith(("http://", "https://")):
            matches.append(ep)
    matches.sort(key=lambda ep: not ep.url.startswith("https://"))
    return matches[0] if matches else None


class NgrokAgentTunnel(ProcessTunnel):
    name = "ngrok-agent"
    client_ip_header = "X-Forwarded-For"
    tradeoff = NGROK_TRADEOFF

    def __init__(
        self,
        local_port: int,
        on_event: TunnelCallback | None = None,
        *,
        api_url: str = DEFAULT_API,
        command: Sequence[str] | None = None,
        authtoken: str = "",
        domain: str = "",
        start_agent: bool = True,
        restart: RestartPolicy | None = None,
        open_timeout_s: float = 30.0,
        poll_interval_s: float = 2.0,
        http_timeout_s: float = 2.0,
    ) -> None:
        super().__init__(local_port, on_event)
        self.api_url = (api_url or DEFAULT_API).rstrip("/")
        self.command = tuple(command) if command else None
        self._authtoken = authtoken.strip()
        self.domain = domain.strip()
        self.start_agent = start_agent
        self.restart = restart or TUNNEL_RESTART
        self.open_timeout_s = open_timeout_s
        self.poll_interval_s = poll_interval_s
        self.http_timeout_s = http_timeout_s
        self.adopted = False
        self._agent_api: str | None = None  # the API of the agent we started (from its log)
        self._failure = ""

    # -- API ---------------------------------------------------------------------------------
    async def lookup(self, api_url: str) -> AgentEndpoint | None:
        """The endpoint of the agent at ``api_url`` that forwards to our port (``httpx.HTTPError``
        when the agent does not answer)."""
        assert self._client is not None
        status, data = await get_json(self._client, f"{api_url}/api/endpoints")
        if status == 404:
            status, data = await get_json(self._client, f"{api_url}/api/tunnels")
        if status != 200:
            return None
        return pick_endpoint(parse_endpoints(data), self.local_port)

    # -- open / close ------------------------------------------------------------------------
    async def _open(self) -> str:
        self._client = httpx.AsyncClient(timeout=self.http_timeout_s, trust_env=False, verify=client_context())
        self._down = False
        try:
            url = await self._adopt_or_start()
        except BaseException:
            await self._teardown()
            raise
        self.https = url.startswith("https://")
        self._watcher = asyncio.create_task(self._watch(), name="ngrok-agent-watch")
        return url

    async def _adopt_or_start(self) -> str:
        reason = ""
        try:
            found = await self.lookup(self.api_url)
        except httpx.HTTPError as exc:
            found, reason = None, f"no ngrok agent answers at {self.api_url} ({type(exc).__name__})"
        if found is not None:
            self.adopted = True
            log.info("ngrok-agent: adopted the running agent's endpoint %s", found.url)
            return found.url
        if not reason:
            reason = f"the ngrok agent at {self.api_url} has no endpoint forwarding to port {self.local_port}"
        command = self.command or self._find_binary()
        if not self.start_agent or command is None:
            raise TunnelUnreachable(
                Text(
                    f"Nenhum agente ngrok encaminha para a porta {self.local_port}, e o programa ngrok não "
                    "foi encontrado para iniciar um.",
                    f"No ngrok agent forwards to port {self.local_port}, and the ngrok program was not found "
                    "to start one.",
                ),
                fix=Text(
                    f"Rode 'ngrok http {self.local_port}' em outro terminal, ou use --tunnel ngrok (sem "
                    "programa extra, só o authtoken).",
                    f"Run 'ngrok http {self.local_port}' in another terminal, or use --tunnel ngrok (no extra "
                    "program, only the authtoken).",
                ),
                detail=reason,
            )
        return await self._start_agent(command)

    @staticmethod
    def _find_binary() -> tuple[str, ...] | None:
        found = shutil.which("ngrok")
        return (found,) if found else None

    def argv(self, command: Sequence[str]) -> tuple[str, ...]:
        argv = [*command, "http", f"http://127.0.0.1:{self.local_port}", "--log", "stdout",
                "--log-format", "logfmt", "--inspect=false"]
        if self.domain:
            url = self.domain if "://" in self.domain else f"https://{self.domain}"
            argv += ["--url", url]
        return tuple(argv)

    async def _start_agent(self, command: Sequence[str]) -> str:
        spec = ProcessSpec(
            name="ngrok",
            argv=self.argv(command),
            env={AUTHTOKEN_ENV: self._authtoken} if self._authtoken else None,
            readiness=LogProbe(_STARTED_RE),
            restart=self.restart,
            start_timeout_s=self.open_timeout_s,
            error_code=TunnelUnreachable.code,
            redact=(self._authtoken,) if self._authtoken else (),
        )
        self._failure = ""
        proc = ManagedProcess(spec, on_line=self._on_line)
        self._proc = proc
        await proc.start()
        outcome = await first_run(proc, self.open_timeout_s, extra=lambda: self._agent_api is not None)
        if outcome is not PartState.READY:
            raise self._agent_error(proc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.open_timeout_s
        while True:
            api = self._agent_api
            assert api is not None
            with contextlib.suppress(httpx.HTTPError):
                found = await self.lookup(api)
                if found is not None:
                    self._unsubscribe = proc.subscribe(self._on_proc_change)
                    return found.url
            if loop.time() >= deadline:
                raise TunnelUnreachable(
                    Text(
                        "O ngrok iniciou, mas sua API local não mostrou o endereço do túnel.",
                        "ngrok started, but its local API did not show the tunnel's address.",
                    ),
                    fix=Text("Atualize o ngrok (ngrok update) e tente de novo.",
                             "Update ngrok (ngrok update) and try again."),
                    detail=f"{api}/api/endpoints",
                )
            await asyncio.sleep(0.2)

    def _on_line(self, line: str) -> None:
        if m := _WEB_ADDR_RE.search(line):
            addr = m.group(1).strip('"')
            self._agent_api = addr if "://" in addr else f"http://{addr}"
        elif _ERROR_RE.search(line):
            self._failure = (self._failure + "\n" + line.strip()).strip()[-1000:]

    def _agent_error(self, proc: ManagedProcess) -> TunnelError:
        text = self._failure or "\n".join(proc.log_tail()[-10:]) or proc.reason
        if "ERR_NGROK" in text or "authtoken" in text.lower():
            err = map_ngrok_failure(text, secrets=(self._authtoken,), domain=self.domain)
            if not self._authtoken and isinstance(err, TunnelAuth):
                err.fix_text = AUTHTOKEN_FIX
            return err
        return TunnelUnreachable(
            Text("O agente ngrok não conseguiu abrir o túnel.", "The ngrok agent could not open the tunnel."),
            fix=Text(
                f"Rode 'ngrok http {self.local_port}' num terminal para ver o erro, ou use --tunnel ngrok.",
                f"Run 'ngrok http {self.local_port}' in a terminal to see the error, or use --tunnel ngrok.",
            ),
            detail=text,
        )

    async def _teardown(self) -> None:
        await super()._teardown()
        self.adopted = False

    # -- watching ----------------------------------------------------------------------------
    def _on_proc_change(self, _status: PartStatus) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.state is PartState.FAILED:
            self._failed(self._agent_error(proc))
        elif proc.state in (PartState.RESTARTING, PartState.STARTING, PartState.UNHEALTHY):
            self._disconnected(proc.reason_text)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            api = self._agent_api if self._proc is not None else self.api_url
            if api is None or self._client is None:
                return
            try:
                found = await self.lookup(api)
            except httpx.HTTPError as exc:
                self._disconnected(Text(
                    f"a API do agente ngrok em {api} não responde ({type(exc).__name__})",
                    f"the ngrok agent's API at {api} does not answer ({type(exc).__name__})",
                ))
                continue
            if found is None:
                self._disconnected(Text(
                    f"o agente ngrok não tem endpoint encaminhando para a porta {self.local_port}",
                    f"the ngrok agent has no endpoint forwarding to port {self.local_port}",
                ))
                continue
            self._reconnected(found.url)
