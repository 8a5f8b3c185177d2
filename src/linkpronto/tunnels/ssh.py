"""``ssh``: a reverse forward (``ssh -R``) to your own server, or to services such as localhost.run
and pinggy that print a public URL.

The argv (never a shell string)::

    ssh -N -T -o ExitOnForwardFailure=yes -o BatchMode=yes -o LogLevel=DEBUG1 [ssh_options...]
        -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o StrictHostKeyChecking=accept-new
        [-i identity] [-p port] -R [bind:]remote_port:127.0.0.1:<public_port>
        [-R [bind:]7881:<this machine's LAN address>:7881] user@host

The media forward (``ssh_forward_media``) goes to this machine's LAN address (the interface of the
default route, :func:`linkpronto.platform.lan_address`), never to ``127.0.0.1``: LiveKit's ICE/TCP
port is pion's ``TCPMuxDefault``, which hands an accepted connection to the ICE agent whose passive
candidate has the same *ufrag and local IP* (``GetConnByUfrag(ufrag, isIPv6, local)``, keyed by
``conn.LocalAddr()``), and LiveKit gathers its candidates on non-loopback interfaces only. A forward
that ends on ``127.0.0.1`` arrives with local address ``127.0.0.1``: the mux files it under a key no
agent reads, and ICE never completes (the phone's TCP connect succeeds, no media flows). Arriving on
the LAN address, the connection meets the agent that gathered that address (advertised as
``rtc.node_ip``, the ssh server's address).

ssh takes the *first* value it sees for an option, so the three options before ``ssh_options`` cannot
be overridden (we need the failure exit, no prompts, and the log lines below) and the ones after can.
``-N`` is left out for services that print the URL in a session (localhost.run, pinggy, serveo).

What the log says (stderr, read line by line by the supervisor):

* ``Allocated port N for remote forward to 127.0.0.1:P`` — the server chose the port (``-R 0:...``);
* ``debug1: forwarding_success: all expected forwarding replies received`` — every forward is bound;
  this is the readiness signal;
* ``Error: remote port forwarding failed for listen port N`` — the port is taken on the server
  (``ExitOnForwardFailure`` makes ssh exit instead of running without the forward).

The public URL is ``ssh_public_url`` (``{port}`` replaced by the bound port), else the https URL the
service printed, else ``http://<host>:<bound port>``. The process runs under
:class:`~linkpronto.supervise.ManagedProcess`: when the connection drops ssh exits (keep-alives
detect a dead server in ~15 s), the supervisor restarts it with capped back-off, and this provider
reports ``disconnected``, then ``reconnected`` and ``url_changed`` when the bound port changed.
ssh never sees HTTP, so no request path (and no link token) can reach its log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from linkpronto.aio import wait_set
from linkpronto.errors import BinaryNotFound, ConfigInvalid, TunnelAuth, TunnelError, TunnelUnreachable
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.supervise import ManagedProcess
from linkpronto.supervise.spec import LogProbe, ProcessSpec, RestartPolicy
from linkpronto.tunnels._util import TUNNEL_RESTART
from linkpronto.tunnels.base import (
    TunnelCallback,
    TunnelProvider,
)

if TYPE_CHECKING:
    from linkpronto.config import TunnelSettings

log = logging.getLogger(__name__)

#: Services that print the public URL in an interactive session (so ``-N`` must not be used).
URL_PRINTING_SERVICES = ("localhost.run", "pinggy.io", "serveo.net")


_ALLOCATED_RE = re.compile(r"Allocated port (\d+) for remote forward to \[?([^\]\s]+?)\]?:(\d+)")
_READY_RE = r"forwarding_success: all expected forwarding replies received"
_FORWARD_FAILED_RE = re.compile(r"remote port forwarding failed for listen port (\d+)")
_URL_RE = re.compile(r"\bhttps?://[A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}(?::\d+)?(?:/[^\s\"'<>]*)?")
_AUTH_MARKERS = ("Permission denied", "Too many authentication failures", "Host key verification failed")
_NETWORK_MARKERS = (
    "Connection refused",
    "Could not resolve hostname",
    "Connection timed out",
    "No route to host",
    "Network is unreachable",
    "Connection closed by",
    "Connection reset",
    "kex_exchange_identification",
    "Operation timed out",
)

SSH_TRADEOFF = Text(
    "Precisa de um servidor SSH (VPS própria com domínio fixo) ou serviço como localhost.run/pinggy; URL fixa "
    "no seu servidor; HTTPS só com um proxy lá; pode levar a mídia (porta 7881) para aparelhos fora da rede.",
    "Needs an SSH server (own VPS with a fixed domain) or a service such as localhost.run/pinggy; fixed URL "
    "on your server; HTTPS only with a proxy there; can carry media (port 7881) to devices outside the network.",
)


@dataclass(frozen=True, slots=True)
class SshTarget:
    user: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, value: str) -> SshTarget:
        """``user@host[:port]`` (the contract's form of ``ssh_target``)."""
        m = re.match(r"^(?:([^@\s]+)@)?([^@:\s]+)(?::(\d{1,5}))?$", value.strip())
        if not m:
            raise ConfigInvalid(
                Text(
                    f"tunnel.ssh_target '{value}' não está no formato usuario@servidor[:porta].",
                    f"tunnel.ssh_target '{value}' is not of the form user@host[:port].",
                ),
                fix=Text(
                    "Use por exemplo: tunnel.ssh_target = \"deploy@consultas.suaclinica.com.br\".",
                    "Use for example: tunnel.ssh_target = \"deploy@consultas.yourclinic.com\".",
                ),
            )
        return cls(m.group(1) or "", m.group(2), int(m.group(3)) if m.group(3) else None)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def prints_url(self) -> bool:
        host = self.host.lower()
        return any(host == s or host.endswith("." + s) for s in URL_PRINTING_SERVICES)


@dataclass(slots=True)
class _Connection:
    """What one ssh run (one generation) has told us."""

    allocated: dict[int, int] = field(default_factory=dict)  # local port → bound remote port
    printed_url: str | None = None
    failure: str = ""
    forwarded: bool = False


class SshTunnel(TunnelProvider):
    name = "ssh"
    tradeoff = SSH_TRADEOFF
    https = False

    def __init__(
        self,
        local_port: int,
        target: str,
        on_event: TunnelCallback | None = None,
        *,
        identity: str = "",
        remote_port: int = 0,
        public_url: str = "",
        forward_media: bool = False,
        media_port: int = 7881,
        media_host: str = "",
        options: Sequence[str] = (),
        remote_bind: str = "",
        ssh_binary: str | None = None,
        restart: RestartPolicy | None = None,
        open_timeout_s: float = 30.0,
        url_wait_s: float = 10.0,
    ) -> None:
        super().__init__(local_port, on_event)
        self.target = SshTarget.parse(target)
        self.identity = identity
        self.remote_port = remote_port
        self.public_url_template = public_url.strip().rstrip("/")
        self.forward_media = forward_media
        self.forwards_media = forward_media
        self.media_port = media_port
        #: Where the media forward ends on this machine ("" = the LAN address, resolved at each open).
        self.media_host = media_host
        self.options = tuple(options)
        self.remote_bind = remote_bind
        self.ssh_binary = ssh_binary
        self.restart = restart or TUNNEL_RESTART
        self.open_timeout_s = open_timeout_s
        self.url_wait_s = url_wait_s
        self._proc: ManagedProcess | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._conn = _Connection()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._changed: asyncio.Event | None = None
        self._opened = False
        self._down = False
        self._last_state: PartState | None = None
        self._ready_at = 0.0

    # -- argv --------------------------------------------------------------------------------
    def argv(self, binary: str = "ssh") -> tuple[str, ...]:
        t = self.target
        forced = ["-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes", "-o", "LogLevel=DEBUG1"]
        defaults = [
            "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3",
            "-o", "StrictHostKeyChecking=accept-new",
        ]  # fmt: skip
        argv: list[str] = [binary]
        if not t.prints_url:
            argv.append("-N")
        argv += ["-T", *forced, *self.options, *defaults]
        if self.identity:
            argv += ["-i", self.identity]
        if t.port:
            argv += ["-p", str(t.port)]
        bind = f"{self.remote_bind}:" if self.remote_bind else ""
        argv += ["-R", f"{bind}{self.remote_port}:127.0.0.1:{self.local_port}"]
        if self.forward_media:
            host = self.media_destination()
            host = f"[{host}]" if ":" in host else host
            argv += ["-R", f"{bind}{self.media_port}:{host}:{self.media_port}"]
        argv.append(t.destination)
        return tuple(argv)

    def media_destination(self) -> str:
        """The address the media forward connects to here: one LiveKit gathered an ICE/TCP candidate on
        (see the module docstring: a loopback destination reaches no ICE agent)."""
        if self.media_host:
            return self.media_host
        from linkpronto.platform import lan_address

        return lan_address()

    def _binary(self) -> str:
        if self.ssh_binary:
            return self.ssh_binary
        found = shutil.which("ssh")
        if found is None:
            raise BinaryNotFound(
                Text("O programa 'ssh' (OpenSSH) não foi encontrado.", "The 'ssh' program (OpenSSH) was not found."),
                fix=Text(
                    "No Windows 10/11 ative o 'Cliente OpenSSH' em Configurações > Aplicativos > Recursos "
                    "opcionais; no Linux instale openssh-client.",
                    "On Windows 10/11 enable 'OpenSSH Client' in Settings > Apps > Optional features; on "
                    "Linux install openssh-client.",
                ),
            )
        return found

    # -- open / close ------------------------------------------------------------------------
    async def _open(self) -> str:
        binary = self._binary()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._changed = asyncio.Event()
        self._conn = _Connection()
        self._opened = False
        self._down = False
        spec = ProcessSpec(
            name="ssh",
            argv=self.argv(binary),
            readiness=LogProbe(_READY_RE),
            restart=self.restart,
            start_timeout_s=self.open_timeout_s,
            error_code=TunnelUnreachable.code,
        )
        proc = ManagedProcess(spec, on_line=self._on_line)
        self._proc = proc
        self._unsubscribe = proc.subscribe(self._on_proc_change)
        try:
            await proc.start()
            url = await self._wait_first_connection()
        except BaseException:
            await self._stop_proc()
            raise
        self._opened = True
        return url

    async def _wait_first_connection(self) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.open_timeout_s
        proc = self._proc
        assert proc is not None and self._changed is not None
        while True:
            conn = self._conn
            state = proc.state
            if state is PartState.READY and conn.forwarded:
                waiting_for_url = (
                    self.target.prints_url and not self.public_url_template and conn.printed_url is None
                )
                if not waiting_for_url:
                    return self._compute_url(conn)
                # The service prints its URL right after the forward is bound; give it a moment.
                if loop.time() >= self._ready_at + self.url_wait_s:
                    raise TunnelUnreachable(
                        Text(
                            f"O serviço {self.target.host} não informou um endereço público.",
                            f"The service {self.target.host} did not print a public address.",
                        ),
                        fix=Text(
                            "Defina tunnel.ssh_public_url com o endereço que o serviço lhe deu.",
                            "Set tunnel.ssh_public_url to the address the service gave you.",
                        ),
                        detail=self._tail(),
                    )
            elif state in (PartState.RESTARTING, PartState.FAILED, PartState.STOPPED):
                raise self._failure_error(conn)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TunnelUnreachable(
                    Text(
                        f"O ssh não estabeleceu o túnel com {self.target.host} em {self.open_timeout_s:.0f} s.",
                        f"ssh did not set up the tunnel to {self.target.host} within {self.open_timeout_s:.0f} s.",
                    ),
                    fix=Text(
                        "Verifique se o servidor responde (ssh usuario@servidor) e a internet.",
                        "Check that the server answers (ssh user@host) and the internet connection.",
                    ),
                    detail=self._tail(),
                )
            self._changed.clear()
            if not await wait_set(self._changed, min(remaining, 0.5)):
                continue

    async def _close(self) -> None:
        self._opened = False
        await self._stop_proc()

    async def _stop_proc(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        proc, self._proc = self._proc, None
        if proc is not None:
            await proc.stop()

    # -- URL ---------------------------------------------------------------------------------
    def bound_port(self, conn: _Connection | None = None) -> int:
        conn = conn or self._conn
        return conn.allocated.get(self.local_port) or self.remote_port

    def _compute_url(self, conn: _Connection) -> str:
        port = self.bound_port(conn)
        if self.public_url_template:
            url = self.public_url_template.replace("{port}", str(port))
        elif conn.printed_url:
            url = conn.printed_url
        else:
            if not port:
                raise TunnelUnreachable(
                    Text(
                        "O servidor SSH não informou a porta que reservou para o túnel.",
                        "The SSH server did not report the port it bound for the tunnel.",
                    ),
                    fix=Text(
                        "Defina tunnel.ssh_remote_port com uma porta livre no servidor.",
                        "Set tunnel.ssh_remote_port to a free port on the server.",
                    ),
                    detail=self._tail(),
                )
            url = f"http://{self.target.host}:{port}"
        self.https = url.lower().startswith("https://")
        return url.rstrip("/")

    # -- supervisor callbacks ----------------------------------------------------------------
    def _on_line(self, line: str) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            try:
                self._loop.call_soon_threadsafe(self._handle_line, line)
            except RuntimeError:
                log.debug("ssh: line after the loop closed")
            return
        self._handle_line(line)

    def _handle_line(self, line: str) -> None:
        conn = self._conn
        if m := _ALLOCATED_RE.search(line):
            conn.allocated[int(m.group(3))] = int(m.group(1))
        elif _READY_RE in line:
            conn.forwarded = True
            if self._loop is not None:
                self._ready_at = self._loop.time()
        elif m := _FORWARD_FAILED_RE.search(line):
            conn.failure = line.strip()
        elif any(marker in line for marker in _AUTH_MARKERS + _NETWORK_MARKERS):
            conn.failure = line.strip()
        elif self.target.prints_url and conn.printed_url is None and not line.startswith("debug"):
            conn.printed_url = self._pick_url(line)
        self._poke()

    def _pick_url(self, line: str) -> str | None:
        """The tunnel's URL in a service's banner, skipping links to the service's own pages."""
        service = ".".join(self.target.host.lower().split(".")[-2:])
        https: str | None = None
        other: str | None = None
        for url in _URL_RE.findall(line):
            host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0].lower()
            if host == service or host.endswith("." + service):
                continue
            if url.lower().startswith("https://"):
                https = https or url
            else:
                other = other or url
        return https or other

    def _on_proc_change(self, *_: Any) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            try:
                self._loop.call_soon_threadsafe(self._handle_proc_change)
            except RuntimeError:
                log.debug("ssh: state change after the loop closed")
            return
        self._handle_proc_change()

    def _handle_proc_change(self) -> None:
        proc = self._proc
        if proc is None:
            return
        state = proc.state
        previous, self._last_state = self._last_state, state
        if state is PartState.STARTING and previous is not PartState.STARTING:
            self._conn = _Connection()  # a new ssh run: forget the previous run's ports
        self._poke()
        if not self._opened:
            return
        if state is PartState.READY:
            if self._down:
                self._forwarded_again()
        elif state is PartState.FAILED:
            self._failed(self._failure_error(self._conn))
        elif state in (PartState.RESTARTING, PartState.STARTING, PartState.UNHEALTHY):
            if state is PartState.RESTARTING:
                # Why the last run ended (server down, key refused, port taken), with its fix.
                self._status.last_error = self._failure_error(self._conn)
            self._disconnected(self._conn.failure or proc.reason_text)

    def _forwarded_again(self) -> None:
        conn = self._conn
        if not conn.forwarded:
            return
        self._status.last_error = None
        try:
            url = self._compute_url(conn)
        except TunnelError as exc:
            self._status.last_error = exc
            url = self.public_url or ""
        self._reconnected(url or None)

    def _poke(self) -> None:
        if self._changed is not None:
            self._changed.set()
        # A READY that arrived before the forwarding line: re-check on the next line.
        if self._opened and self._down and self._proc is not None and self._proc.state is PartState.READY:
            self._forwarded_again()

    # -- errors ------------------------------------------------------------------------------
    def _tail(self) -> str:
        proc = self._proc
        if proc is None:
            return ""
        lines = [ln for ln in proc.log_tail() if not ln.startswith("debug")]
        return "\n".join(lines[-10:])

    def _failure_error(self, conn: _Connection) -> TunnelError:
        text = conn.failure or self._tail()
        host = self.target.host
        if m := _FORWARD_FAILED_RE.search(text):
            port = m.group(1)
            return TunnelUnreachable(
                Text(
                    f"A porta {port} já está em uso no servidor {host}: o túnel ssh não pôde reservá-la.",
                    f"Port {port} is already in use on the server {host}: the ssh tunnel could not bind it.",
                ),
                fix=Text(
                    "Feche o outro túnel que usa essa porta no servidor, escolha outra em "
                    "tunnel.ssh_remote_port, ou use 0 para o servidor escolher.",
                    "Close the other tunnel using that port on the server, choose another in "
                    "tunnel.ssh_remote_port, or use 0 to let the server choose.",
                ),
                detail=text,
                remote_port=int(port),
            )
        if "Host key verification failed" in text:
            return TunnelAuth(
                Text(
                    f"A chave do servidor {host} mudou ou não é conhecida; o ssh recusou a conexão.",
                    f"The key of the server {host} changed or is unknown; ssh refused to connect.",
                ),
                fix=Text(
                    f"Confirme a chave do servidor e atualize known_hosts (ssh-keygen -R {host}; depois ssh {host}).",
                    f"Confirm the server's key and update known_hosts (ssh-keygen -R {host}; then ssh {host}).",
                ),
                detail=text,
            )
        if any(marker in text for marker in _AUTH_MARKERS):
            return TunnelAuth(
                Text(
                    f"O servidor {host} recusou a chave SSH.",
                    f"The server {host} refused the SSH key.",
                ),
                fix=Text(
                    "Confira tunnel.ssh_identity (a chave privada) e se a chave pública está em "
                    "~/.ssh/authorized_keys no servidor.",
                    "Check tunnel.ssh_identity (the private key) and that the public key is in "
                    "~/.ssh/authorized_keys on the server.",
                ),
                detail=text,
            )
        return TunnelUnreachable(
            Text(
                f"Não consegui conectar por SSH a {host}.",
                f"Could not connect over SSH to {host}.",
            ),
            fix=Text(
                "Verifique o endereço em tunnel.ssh_target, se o servidor está no ar e a internet.",
                "Check the address in tunnel.ssh_target, that the server is up, and the internet connection.",
            ),
            detail=text,
        )


def unmet_requirements(t: TunnelSettings, which: Callable[[str], str | None] = shutil.which) -> list[ConfigInvalid]:
    """What ``doctor`` reports before ``up`` tries ssh: the target, and the ssh client itself."""
    out: list[ConfigInvalid] = []
    if not t.ssh_target:
        out.append(ConfigInvalid(
            Text("O túnel ssh precisa de tunnel.ssh_target.", "The ssh tunnel needs tunnel.ssh_target."),
            fix=Text('Ex.: ssh_target = "usuario@meu-vps.com"', 'E.g. ssh_target = "user@my-vps.com"'),
        ))
    if not which("ssh"):
        out.append(ConfigInvalid(
            Text("O cliente ssh não foi encontrado.", "The ssh client was not found."),
            fix=Text(
                "Windows 10/11: Configurações > Aplicativos > Recursos opcionais > Cliente OpenSSH.",
                "Windows 10/11: Settings > Apps > Optional features > OpenSSH Client.",
            ),
            program="ssh",
        ))
    return out


def server_address(t: TunnelSettings, which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The ssh server's IPv4 address, for LiveKit's ``rtc.node_ip`` under ``ssh_forward_media``.

    The phone's ICE/TCP goes to that address (the forward ends there), so LiveKit must advertise it.
    The host is what ``ssh -G`` says it is (``HostName`` from ``~/.ssh/config`` or ``ssh_options``
    applied — no connection is made), resolved by this machine. None when it cannot be told, or is
    a loopback address (no phone reaches that): the caller falls back and the media rung measures.
    Asked once per target (LiveKit's config is written once): the ladder, asking at every run, gets
    the address LiveKit advertises and never waits on ssh or DNS on the serving loop again.
    """
    if not t.ssh_target:
        return None
    return _server_address(t.ssh_target, tuple(t.ssh_options), which("ssh"))


@functools.cache
def _server_address(ssh_target: str, options: tuple[str, ...], binary: str | None) -> str | None:
    import ipaddress
    import socket
    import subprocess

    target = SshTarget.parse(ssh_target)
    host = target.host
    if binary:
        argv = [binary, "-G", *options, *(["-p", str(target.port)] if target.port else []), target.destination]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=5.0, check=False,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0:
            for line in done.stdout.splitlines():
                name, _, value = line.partition(" ")
                if name.lower() == "hostname" and value.strip():
                    host = value.strip()
                    break
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        except OSError:
            log.warning("ssh_forward_media: could not resolve %s; set livekit.node_ip to the server's address", host)
            infos = []
        address = ipaddress.ip_address(infos[0][4][0]) if infos else None
    return str(address) if address is not None and not address.is_loopback and address.version == 4 else None
