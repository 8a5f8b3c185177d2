"""LiveKit ``local`` mode: find ``livekit-server``, write its config, run it under the supervisor.

* Binary: ``livekit.binary`` from the settings → ``livekit-server`` on PATH →
  ``<data_dir>/bin/livekit-server[.exe]``; when missing and ``install_allowed``, it is installed
  there (``linkpronto.install``, checksum-verified, progress to ``progress``); otherwise
  :class:`~linkpronto.errors.BinaryNotFound` whose fix is ``linkpronto install livekit``.
* Config: ``<data_dir>/livekit.yaml`` (owner-only: it holds the secret) with the key pair,
  ``port``, ``rtc.tcp_port``, ``rtc.udp_port`` (one UDP mux port), ``rtc.node_ip`` = this machine's LAN
  address, or with ``ssh_forward_media`` the ssh server's (``livekit.node_ip`` overrides; see
  :func:`advertised_node_ip`), ``rtc.use_external_ip: false`` and ``bind_addresses``.
  ``bind_addresses`` only concerns the HTTP/WebSocket port (signalling and the Twirp API); the
  ICE/TCP and UDP media ports listen on every interface and advertise ``node_ip``. So the
  signalling port binds ``127.0.0.1`` whenever a tunnel carries signalling (the gateway proxies
  ``/rtc`` and nothing else), and every interface only for the ``lan`` provider; media stays
  reachable on the LAN either way.
* Ready when ``GET /`` answers ``OK`` **and** ``/rtc/validate`` accepts a probe token signed with our
  key pair; a server already on the port that passes the same check is adopted, anything else is
  ``PORT_IN_USE``. A crash loop is ``LIVEKIT_CRASH_LOOP``. The secret never appears in captured
  output.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from linkpronto import platform
from linkpronto.components import Observable, PartStatus
from linkpronto.config import Settings
from linkpronto.errors import (
    BinaryNotFound,
    ConfigInvalid,
    InsecureLivekitKeys,
    LinkprontoError,
    LivekitCrashLoop,
)
from linkpronto.i18n import Text
from linkpronto.install.common import ProgressCallback
from linkpronto.livekit.remote import probe_livekit
from linkpronto.schema import PartState
from linkpronto.supervise import CustomProbe, ManagedProcess, ProbeResult, ProcessSpec, RestartPolicy
from linkpronto.supervise.probes import new_client

log = logging.getLogger(__name__)

Installer = Callable[[Path, str], Awaitable[Path]]
"""``(bin_dir, version) -> installed path``; :func:`linkpronto.install.install_livekit` by default."""

BINARY = "livekit-server"
CONFIG_FILE = "livekit.yaml"
MIN_SECRET_LENGTH = 32
#: A crashed livekit-server is restarted after 0.1 s (then 0.2, 0.4 ... for crashes in a row): the call
#: resumes as soon as it is ready again (browsers retry every 0.4 s, static/livekit.js reconnectPolicy).
LIVEKIT_RESTART = RestartPolicy(backoff_initial_s=0.1)
INSECURE_PAIRS = frozenset({("devkey", "secret")})
READY_PERIOD_S = 0.1
HEALTH_PERIOD_S = 2.0
CHECK_TIMEOUT_S = 2.0
INSTALL_FIX = Text(
    "Instale o LiveKit com: linkpronto install livekit (ou deixe o 'linkpronto up' instalar sozinho).",
    "Install LiveKit with: linkpronto install livekit (or let 'linkpronto up' install it by itself).",
)


def check_livekit_keys(api_key: str, api_secret: str, tunnel_provider: str) -> None:
    """Refuse keys anyone could guess whenever LiveKit is reachable beyond this network.

    ``devkey``/``secret`` (what ``livekit-server --dev`` uses) or a secret under 32 characters raise
    :class:`InsecureLivekitKeys` unless ``tunnel_provider`` is ``lan``. An empty key or secret is
    :class:`ConfigInvalid` in every mode (LiveKit would not start, or would refuse every token).
    """
    if not api_key or not api_secret:
        raise ConfigInvalid(
            Text("A chave ou o segredo da API do LiveKit está vazio.", "The LiveKit API key or secret is empty."),
            fix=Text(
                "No modo local, apague os valores de livekit.api_key/api_secret para o linkpronto gerar um par "
                "forte; nos outros modos, informe LIVEKIT_API_KEY e LIVEKIT_API_SECRET.",
                "In local mode, clear livekit.api_key/api_secret so linkpronto generates a strong pair; in "
                "the other modes, set LIVEKIT_API_KEY and LIVEKIT_API_SECRET.",
            ),
        )
    if tunnel_provider == "lan":
        return
    if (api_key, api_secret) in INSECURE_PAIRS:
        reason = Text("o par devkey/secret é público (é o do modo --dev)",
                      "the devkey/secret pair is public (it is --dev mode's)")
    elif len(api_secret) < MIN_SECRET_LENGTH:
        reason = Text(f"o segredo tem {len(api_secret)} caracteres (mínimo {MIN_SECRET_LENGTH})",
                      f"the secret has {len(api_secret)} characters (minimum {MIN_SECRET_LENGTH})")
    else:
        return
    raise InsecureLivekitKeys(
        Text(
            f"As chaves do LiveKit não são seguras para uso pela internet: {reason.pt}. Com o túnel "
            f"'{tunnel_provider}', qualquer pessoa poderia criar acessos às salas.",
            f"The LiveKit keys are not safe to use over the internet: {reason.en}. With the "
            f"'{tunnel_provider}' tunnel, anyone could mint access to the rooms.",
        ),
        fix=Text(
            "No modo local, apague livekit.api_key e livekit.api_secret para o linkpronto gerar um par forte. "
            "Com um LiveKit próprio, gere um par com 'livekit-server generate-keys' e configure-o nele e em "
            "LIVEKIT_API_KEY/LIVEKIT_API_SECRET. Só para testes na mesma rede Wi-Fi: --tunnel lan.",
            "In local mode, clear livekit.api_key and livekit.api_secret so linkpronto generates a strong pair. "
            "With your own LiveKit, make a pair with 'livekit-server generate-keys' and set it there and in "
            "LIVEKIT_API_KEY/LIVEKIT_API_SECRET. For same-Wi-Fi tests only: --tunnel lan.",
        ),
        tunnel_provider=tunnel_provider,
    )


def find_livekit_binary(
    settings: Settings, data_dir: Path, which: Callable[[str], str | None] = shutil.which
) -> Path:
    """``livekit.binary`` → PATH → ``<data_dir>/bin``; :class:`BinaryNotFound` when none exists."""
    configured = settings.livekit.binary
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        found = which(configured)
        if found:
            return Path(found)
        raise BinaryNotFound(
            Text(f"O programa do LiveKit indicado em livekit.binary não existe: {configured}",
                 f"The LiveKit program set in livekit.binary does not exist: {configured}"),
            fix=Text(
                "Corrija livekit.binary (ou apague-o) e instale com: linkpronto install livekit",
                "Correct livekit.binary (or clear it) and install with: linkpronto install livekit",
            ),
            program=configured,
        )
    found = which(BINARY)
    if found:
        return Path(found)
    local = data_dir / "bin" / platform.executable_name(BINARY)
    if local.is_file():
        return local
    raise BinaryNotFound(
        Text(
            f"O servidor de vídeo (livekit-server) não está instalado: não está no PATH nem em {local.parent}.",
            f"The video server (livekit-server) is not installed: it is neither on PATH nor in {local.parent}.",
        ),
        fix=INSTALL_FIX,
        program=BINARY,
    )


def bind_addresses(tunnel_provider: str) -> list[str]:
    """Where the signalling port listens: loopback when a tunnel (via the gateway) carries it, every
    interface only when whichever provider runs has devices connect directly (its facts say so)."""
    from linkpronto.tunnels import possible_facts

    facts = possible_facts(tunnel_provider)
    return ["0.0.0.0"] if facts and all(f.binds_lan for f in facts) else ["127.0.0.1"]


def forwards_media(settings: Settings) -> bool:
    """ICE/TCP reaches this LiveKit through ``ssh -R`` (``ssh_forward_media``). Then LiveKit runs
    ICE lite (``rtc.use_ice_lite``): it never sends connectivity checks itself, so the only pairs are
    the ones a device opens towards the advertised (forwarded) address — the path the media rung
    measures is the path every phone takes. With full ICE LiveKit would reach the rung's own host
    candidates directly (a LAN/loopback shortcut), and the rung could not prove the forward."""
    t = settings.tunnel
    return bool(t.ssh_forward_media) and t.provider in ("ssh", "auto")


def advertised_node_ip(settings: Settings) -> str:
    """``rtc.node_ip``, the address LiveKit hands devices for media: ``livekit.node_ip`` when set;
    with ``ssh_forward_media`` the ssh server's own address (where the ICE/TCP forward listens —
    no more copying the VPS's address by hand); else this machine's LAN address. LiveKit Cloud
    advertises its own: only ``livekit.node_ip`` (normally empty) then."""
    if settings.livekit.node_ip or settings.livekit.mode == "cloud":
        return settings.livekit.node_ip
    if forwards_media(settings):
        from linkpronto.tunnels.ssh import server_address

        found = server_address(settings.tunnel)
        if found:
            return found
    return platform.lan_address()


def render_config(settings: Settings, api_key: str, api_secret: str, node_ip: str) -> dict[str, Any]:
    lk = settings.livekit
    return {
        "port": lk.port,
        "bind_addresses": bind_addresses(settings.tunnel.provider),
        "rtc": {
            "tcp_port": lk.tcp_port,
            "udp_port": lk.udp_port,
            "use_external_ip": False,
            "node_ip": node_ip,
            **({"stun_servers": list(lk.stun_servers)} if lk.stun_servers else {}),
            **({"use_ice_lite": True} if forwards_media(settings) else {}),
        },
        "keys": {api_key: api_secret},
        "logging": {"level": "info"},
        # Room events (patient joined…) to the admin listener on loopback, signed with this key pair.
        "webhook": webhook_config(settings, api_key),
    }


def webhook_config(settings: Settings, api_key: str) -> dict[str, Any]:
    """livekit-server's ``webhook`` section: sign with ``api_key``, POST to linkpronto's admin listener."""
    from linkpronto.events.webhook import ADMIN_PATH

    # The admin listener's own address when it is bound to one (--admin-bind 10.0.0.5): 127.0.0.1
    # would reach nothing there.
    bind = settings.server.admin_bind
    host = "127.0.0.1" if bind in ("", "0.0.0.0", "::", "127.0.0.1", "localhost") else (
        f"[{bind}]" if ":" in bind else bind)
    return {"api_key": api_key, "urls": [f"http://{host}:{settings.server.admin_port}{ADMIN_PATH}"]}


def write_config(path: Path, config: dict[str, Any]) -> Path:
    # JSON is YAML (1.2): livekit-server reads it as its YAML config, and no YAML library is loaded.
    platform.write_private(path, json.dumps(config, indent=2).encode("utf-8"))
    return path


async def livekit_health(client: httpx.AsyncClient, base_url: str, api_key: str, api_secret: str,
                         timeout_s: float = CHECK_TIMEOUT_S) -> ProbeResult:
    """The supervisor's liveness probe: :func:`~linkpronto.livekit.remote.probe_livekit` (the one
    health check, shared with the remote modes and the verification ladder) as a :class:`ProbeResult`.

    Network errors raise (``httpx.HTTPError``); a wrong answer is a failed :class:`ProbeResult`.
    """
    ok, detail = await probe_livekit(client, base_url, api_key, api_secret, timeout_s=timeout_s)
    return ProbeResult(ok, "GET / is OK and /rtc/validate accepts our key" if ok else detail.en)


class LocalLivekit(Observable):
    """The ``livekit`` component in ``local`` mode (implements :class:`~linkpronto.components.Component`)."""

    name = "livekit"

    def __init__(
        self,
        settings: Settings,
        api_key: str,
        api_secret: str,
        data_dir: Path | None = None,
        *,
        on_line: Callable[[str], None] | None = None,
        which: Callable[[str], str | None] = shutil.which,
        restart: RestartPolicy | None = None,
        install_allowed: bool = False,
        installer: Installer | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__()
        self._restart = restart or LIVEKIT_RESTART
        self.install_allowed = install_allowed
        self._installer = installer
        self._progress = progress
        self._installing: str | None = None
        self._install_bytes: tuple[int, int | None] | None = None
        self.settings = settings
        self.data_dir = data_dir if data_dir is not None else settings.data_dir
        self._api_key = api_key
        self._api_secret = api_secret
        self._on_line = on_line
        self._which = which
        self._process: ManagedProcess | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._error: LinkprontoError | None = None
        self.binary: Path | None = None

    @property
    def port(self) -> int:
        return self.settings.livekit.port

    @property
    def url(self) -> str:
        """Local HTTP base (the gateway proxies ``/rtc`` here; the browser never sees it)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    @property
    def process(self) -> ManagedProcess | None:
        return self._process

    def spec(self, binary: Path) -> ProcessSpec:
        check = CustomProbe(self.check, "GET / and /rtc/validate", period_s=READY_PERIOD_S,
                            timeout_s=CHECK_TIMEOUT_S)
        health = CustomProbe(self.check, "GET / and /rtc/validate", period_s=HEALTH_PERIOD_S,
                             timeout_s=CHECK_TIMEOUT_S, failure_threshold=3)
        return ProcessSpec(
            name=self.name,
            argv=(str(binary), "--config", str(self.config_path)),
            readiness=check,
            liveness=health,
            restart=self._restart,
            error_code=LivekitCrashLoop.code,
            port=self.port,
            port_setting="livekit.port",
            redact=(self._api_secret,),
        )

    async def check(self) -> ProbeResult:
        if self._client is None:
            self._client = new_client()
        return await livekit_health(self._client, self.url, self._api_key, self._api_secret)

    async def is_ours(self) -> bool:
        """Adoption: whatever answers on the port accepts tokens signed with our key pair."""
        try:
            return (await self.check()).ok
        except (httpx.HTTPError, OSError):
            return False

    def prepare(self, binary: Path | None = None) -> tuple[Path, Path]:
        """Check the keys, find the binary and write the config; raises before anything runs."""
        check_livekit_keys(self._api_key, self._api_secret, self.settings.tunnel.provider)
        if binary is None:
            binary = find_livekit_binary(self.settings, self.data_dir, self._which)
        node_ip = advertised_node_ip(self.settings)
        config = render_config(self.settings, self._api_key, self._api_secret, node_ip)
        return binary, write_config(self.config_path, config)

    async def ensure_binary(self) -> Path:
        """The binary; installs it into ``<data_dir>/bin`` when missing and ``install_allowed``.

        Raises :class:`BinaryNotFound` (install not allowed, or ``livekit.binary`` points nowhere)
        or :class:`~linkpronto.errors.InstallFailed` (the download or its checksum failed).
        """
        try:
            return find_livekit_binary(self.settings, self.data_dir, self._which)
        except BinaryNotFound:
            if not self.install_allowed or self.settings.livekit.binary:
                raise
        version = self.settings.livekit.version
        self._installing = version
        self._notify()
        log.info("livekit-server not found: installing %s into %s", version, self.data_dir / "bin")
        try:
            if self._installer is not None:
                return await self._installer(self.data_dir / "bin", version)
            from linkpronto.install import install_livekit
            from linkpronto.install.common import mirrored
            from linkpronto.install.livekit import DEFAULT_BASE_URL

            base = mirrored(DEFAULT_BASE_URL, self.settings.stack.download_mirror)
            return await install_livekit(self.data_dir / "bin", version, base_url=base, progress=self._on_progress)
        finally:
            self._installing = None
            self._install_bytes = None

    def _on_progress(self, done: int, total: int | None) -> None:
        """Download progress shows in the component's detail (status table, dashboard)."""
        previous = self._install_bytes
        self._install_bytes = (done, total)
        if self._progress is not None:
            self._progress(done, total)
        # Notify about every 5 % (or 1 MB without a total), not on every chunk.
        step = (total // 20) if total else 1 << 20
        if previous is None or done - previous[0] >= max(step, 1) or (total and done >= total):
            self._notify()

    async def start(self) -> None:
        if self._process is not None and self._process.state.value not in ("stopped", "failed"):
            return
        self._error = None
        try:
            check_livekit_keys(self._api_key, self._api_secret, self.settings.tunnel.provider)
            binary, _ = self.prepare(await self.ensure_binary())
        except LinkprontoError as exc:
            self._error = exc
            self._notify()
            raise
        self.binary = binary
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._process = ManagedProcess(self.spec(binary), on_line=self._on_line, adopt=self.is_ours)
        self._unsubscribe = self._process.subscribe(lambda _status: self._notify())
        await self._process.start()

    async def stop(self) -> None:
        if self._process is not None:
            await self._process.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def restart(self) -> None:
        if self._process is not None:
            await self._process.restart()

    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109 - same API as ManagedProcess
        return self._process is not None and await self._process.wait_ready(timeout)

    def status(self) -> PartStatus:
        if self._installing is not None:
            size = ""
            if self._install_bytes is not None:
                done, total = self._install_bytes
                size = f" ({done / 1e6:.1f}/{total / 1e6:.1f} MB)" if total else f" ({done / 1e6:.1f} MB)"
            detail = Text(f"instalando o livekit-server {self._installing}{size}",
                          f"installing livekit-server {self._installing}{size}")
            return PartStatus(state=PartState.STARTING, detail=detail)
        if self._process is not None and self._error is None:
            return self._process.status()
        if self._error is not None:
            return PartStatus(state=PartState.FAILED, detail=self._error.text, error=self._error)
        return PartStatus(state=PartState.STOPPED, detail=Text("não iniciado", "not started"))

    def log_tail(self) -> list[str]:
        return self._process.log_tail() if self._process is not None else []
