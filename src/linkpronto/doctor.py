"""``linkpronto doctor``: everything that can be checked before ``up``, each with its fix.

Checks binaries, ports, LiveKit keys, tunnel credentials, the page assets, the user's Next.js
project (``allowedDevOrigins``, build-time ``NEXT_PUBLIC_*`` URLs) and, on Windows, the firewall
rules phones on the Wi-Fi need for media. Returns data; :mod:`linkpronto.console` prints it.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from linkpronto.config import Settings
from linkpronto.errors import ConfigInvalid, InsecureLivekitKeys
from linkpronto.i18n import Text

Level = Literal["ok", "info", "warn", "error"]
NEXT_CONFIG_NAMES = ("next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs")
SOURCE_DIRS = ("pages", "src", "app", "components", "lib", "utils", "hooks")
SOURCE_EXT = {".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs"}
BUILD_TIME_URLS = ("NEXT_PUBLIC_SITE_URL", "NEXT_PUBLIC_LIVEKIT_URL")
MAX_SCANNED_FILES = 2000


@dataclass(frozen=True)
class Finding:
    name: str
    level: Level
    message: Text
    fix: Text | None = None
    #: A project finding's stable code and place (``doctor --project``: linkpronto.project_scan).
    code: str | None = None
    file: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "level": self.level,
            "ok": self.level in ("ok", "info"),
            "message": self.message.get(),
            "fix": self.fix.get() if self.fix else None,
        }
        if self.code is not None:
            doc.update(code=self.code, file=self.file, line=self.line)
        return doc


def _livekit_binary(settings: Settings) -> Path | None:
    """Where ``up`` would find livekit-server (the LiveKit module's own search)."""
    from linkpronto.errors import BinaryNotFound
    from linkpronto.livekit.local import find_livekit_binary

    try:
        return find_livekit_binary(settings, settings.data_dir)
    except BinaryNotFound:
        return None


def _cloudflared_binary(settings: Settings) -> Path | None:
    """Where ``up`` would find cloudflared (the cloudflared module's own search)."""
    from linkpronto.tunnels.cloudflared import find_cloudflared

    return find_cloudflared(settings.tunnel.cloudflared_binary, settings.data_dir / "bin")


def check_binaries(settings: Settings) -> list[Finding]:
    out: list[Finding] = []
    if settings.livekit.mode == "local":
        p = _livekit_binary(settings)
        if p:
            out.append(Finding("livekit-server", "ok", Text(f"livekit-server: {p}", f"livekit-server: {p}")))
        elif settings.stack.install:
            out.append(
                Finding(
                    "livekit-server",
                    "info",
                    Text(
                        "livekit-server não está instalado; o 'linkpronto up' vai baixá-lo e verificá-lo sozinho.",
                        "livekit-server is not installed; 'linkpronto up' will download and verify it by itself.",
                    ),
                    Text("Ou instale agora: linkpronto install livekit", "Or install it now: linkpronto install livekit"),
                )
            )
        else:
            out.append(
                Finding(
                    "livekit-server",
                    "error",
                    Text("livekit-server não encontrado.", "livekit-server not found."),
                    Text("Rode: linkpronto install livekit", "Run: linkpronto install livekit"),
                )
            )
    if settings.tunnel.provider in ("auto", "cloudflared"):
        p = _cloudflared_binary(settings)
        level: Level = "ok" if p else ("info" if settings.stack.install else "warn")
        out.append(
            Finding(
                "cloudflared",
                level,
                Text(f"cloudflared: {p}", f"cloudflared: {p}")
                if p
                else Text(
                    "cloudflared não está instalado (o 'up' baixa quando precisar).",
                    "cloudflared is not installed ('up' downloads it when needed).",
                ),
                None if p else Text("Ou instale agora: linkpronto install cloudflared", "Or now: linkpronto install cloudflared"),
            )
        )
    return out


def _port_free(port: int, udp: bool = False) -> bool:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def check_ports(settings: Settings, running: bool) -> list[Finding]:
    from linkpronto.platform import port_holder

    out: list[Finding] = []
    wanted: list[tuple[str, int, bool]] = [
        ("server.admin_port", settings.server.admin_port, False),
        ("server.public_port", settings.server.public_port, False),
    ]
    if settings.livekit.mode == "local":
        wanted += [
            ("livekit.port", settings.livekit.port, False),
            ("livekit.tcp_port", settings.livekit.tcp_port, False),
            ("livekit.udp_port", settings.livekit.udp_port, True),
        ]
    for key, port, udp in wanted:
        if _port_free(port, udp):
            out.append(Finding(key, "ok", Text(f"Porta {port} livre.", f"Port {port} is free.")))
            continue
        if running:
            out.append(
                Finding(key, "info", Text(f"Porta {port} em uso (linkpronto rodando).", f"Port {port} in use (linkpronto is running)."))
            )
            continue
        holder = port_holder(port) if not udp else None
        who = f"{holder[1]} (PID {holder[0]})" if holder else "?"
        out.append(
            Finding(
                key,
                "error",
                Text(f"Porta {port} ocupada por {who}.", f"Port {port} is taken by {who}."),
                Text(
                    f"Feche esse programa ou mude {key} (LINKPRONTO_{key.replace('.', '_').upper()}).",
                    f"Close that program or change {key} (LINKPRONTO_{key.replace('.', '_').upper()}).",
                ),
            )
        )
    return out


def check_keys(settings: Settings) -> list[Finding]:
    from linkpronto.livekit.local import check_livekit_keys

    lk = settings.livekit
    if lk.mode == "local" and not lk.api_key:
        return [Finding("livekit.keys", "ok", Text("Chaves do LiveKit geradas pelo linkpronto.", "LiveKit keys generated by linkpronto."))]
    out: list[Finding] = []
    from linkpronto.livekit import remote

    unmet = remote.unmet_requirements(lk) if lk.mode in ("external", "cloud") else []
    if unmet:
        return [Finding("livekit.keys", "error", err.text, err.fix_text) for err in unmet]
    try:
        check_livekit_keys(lk.api_key, lk.api_secret.get_secret_value(), settings.tunnel.provider)
    except (InsecureLivekitKeys, ConfigInvalid) as exc:
        out.append(Finding("livekit.keys", "error", exc.text, exc.fix_text))
    else:
        out.append(Finding("livekit.keys", "ok", Text("Chaves do LiveKit aceitáveis.", "LiveKit keys are acceptable.")))
    return out


def unmet_requirements(settings: Settings) -> list[ConfigInvalid]:
    """What the chosen tunnel provider needs and lacks — each provider module says (``unmet_requirements``)."""
    from linkpronto.tunnels import ngrok, ssh, static

    p = settings.tunnel.provider
    out: list[ConfigInvalid] = []
    if p == "ngrok":  # the agent may carry its own authtoken in ngrok.yml
        out += ngrok.unmet_requirements(settings.tunnel)
    elif p == "ssh":
        out += ssh.unmet_requirements(settings.tunnel)
    elif p == "static":
        out += static.unmet_requirements(settings.tunnel)
    for err in out:
        err.context.setdefault("provider", p)
    return out


def check_tunnel(settings: Settings) -> list[Finding]:
    t = settings.tunnel
    p = t.provider
    out: list[Finding] = []
    for err in unmet_requirements(settings):
        out.append(Finding(f"tunnel.{err.context.get('provider', p)}", "error", err.text, err.fix_text))
    if p == "lan" or (p == "static" and t.static_url.startswith("http://")):
        out.append(
            Finding(
                "https",
                "warn",
                Text(
                    "Sem HTTPS, celulares não liberam câmera e microfone.",
                    "Without HTTPS, phones will not allow camera and microphone.",
                ),
                Text("Use --tunnel cloudflared (HTTPS sem conta) ou ngrok.", "Use --tunnel cloudflared (HTTPS, no account) or ngrok."),
            )
        )
    out += _media_forward(settings)
    from linkpronto.tunnels import tradeoffs

    for name, line in tradeoffs().items():
        out.append(Finding(f"tunnel.option.{name}", "info", Text(f"{name}: {line.pt}", f"{name}: {line.en}")))
    return out


def _media_forward(settings: Settings) -> list[Finding]:
    """With ``ssh_forward_media``: the address LiveKit will hand phones for video (the ssh server's)."""
    from linkpronto.livekit.local import forwards_media

    if not forwards_media(settings) or settings.livekit.mode != "local" or not settings.tunnel.ssh_target:
        return []
    if settings.livekit.node_ip:
        ip = settings.livekit.node_ip
        return [Finding("media.node_ip", "info", Text(f"O vídeo vai para {ip} (livekit.node_ip).",
                                                      f"Video goes to {ip} (livekit.node_ip)."))]
    from linkpronto.tunnels.ssh import server_address

    found = server_address(settings.tunnel)
    if found:
        return [Finding("media.node_ip", "ok", Text(
            f"O vídeo vai para {found}, o endereço do servidor ssh: a porta {settings.livekit.tcp_port} "
            "precisa estar aberta nele (GatewayPorts yes).",
            f"Video goes to {found}, the ssh server's address: port {settings.livekit.tcp_port} must be open "
            "there (GatewayPorts yes)."))]
    return [Finding(
        "media.node_ip", "warn",
        Text(f"Não foi possível saber um endereço público de {settings.tunnel.ssh_target}: celulares de fora "
             "não terão vídeo.",
             f"Could not tell a public address of {settings.tunnel.ssh_target}: phones elsewhere will get no "
             "video."),
        Text("Coloque o endereço público do servidor em livekit.node_ip (ex.: node_ip = \"203.0.113.7\").",
             "Put the server's public address in livekit.node_ip (e.g. node_ip = \"203.0.113.7\")."),
    )]


def check_assets() -> list[Finding]:
    from linkpronto.web.assets import vendor_ready

    if vendor_ready():
        return [Finding("assets", "ok", Text("livekit-client pronto para as páginas.", "livekit-client ready for the pages."))]
    return [
        Finding(
            "assets",
            "error",
            Text(
                "O livekit-client das páginas não está instalado.",
                "The pages' livekit-client is not installed.",
            ),
            Text(
                "Rode: npm install && python -m linkpronto.web.assets (ou python scripts/dev.py setup)",
                "Run: npm install && python -m linkpronto.web.assets (or python scripts/dev.py setup)",
            ),
        )
    ]


def _iter_sources(project: Path) -> list[Path]:
    files: list[Path] = []
    for d in SOURCE_DIRS:
        base = project / d
        if not base.is_dir():
            continue
        for p in base.rglob("*"):
            if "node_modules" in p.parts or ".next" in p.parts:
                continue
            if p.suffix in SOURCE_EXT and p.is_file():
                files.append(p)
                if len(files) >= MAX_SCANNED_FILES:
                    return files
    return files


#: ``next dev`` blocks cross-origin requests for ``/_next/*`` and HMR by default from this release on
#: (vercel/next.js#91507); before it, with ``allowedDevOrigins`` unset, it only warns.
NEXT_BLOCKS_FROM = (16, 2)
LIVEKIT_SIGNING = re.compile(r"LIVEKIT_API_SECRET|new\s+AccessToken\s*\(")


def _version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(x) for x in m.groups() if x is not None) if m else None


def next_version(project: Path) -> tuple[str | None, str | None]:
    """(installed version, declared range) of ``next`` in ``project``."""
    import json

    installed = declared = None
    with contextlib.suppress(OSError, ValueError):
        installed = json.loads((project / "node_modules" / "next" / "package.json").read_text("utf-8")).get("version")
    with contextlib.suppress(OSError, ValueError):
        pkg = json.loads((project / "package.json").read_text("utf-8"))
        declared = {**pkg.get("devDependencies", {}), **pkg.get("dependencies", {})}.get("next")
    return installed, declared


def is_server_only(rel: Path) -> bool:
    """Files Next.js never sends to the browser: Pages Router API routes, App Router route handlers,
    middleware. ``NEXT_PUBLIC_*`` there is read at run time from the server's environment."""
    parts = rel.parts
    if parts[:1] == ("src",):
        parts = parts[1:]
    if parts[:2] == ("pages", "api"):
        return True
    if parts[:1] == ("app",) and rel.stem == "route":
        return True
    return len(parts) == 1 and rel.stem in ("middleware", "proxy")


def check_next_project(settings: Settings, project: Path) -> list[Finding]:
    config = next((project / n for n in NEXT_CONFIG_NAMES if (project / n).is_file()), None)
    if config is None:
        return [
            Finding(
                "nextjs",
                "info",
                Text(f"Nenhum projeto Next.js em {project}.", f"No Next.js project in {project}."),
                Text("Rode 'linkpronto doctor --project CAMINHO' para conferir o seu app.", "Run 'linkpronto doctor --project PATH' to check your app."),
            )
        ]
    out: list[Finding] = [_allowed_dev_origins(settings, project, config)]
    client: dict[str, list[str]] = {name: [] for name in BUILD_TIME_URLS}
    server: dict[str, list[str]] = {name: [] for name in BUILD_TIME_URLS}
    signers: list[str] = []
    pattern = re.compile("|".join(BUILD_TIME_URLS))
    for f in _iter_sources(project):
        try:
            content = f.read_text("utf-8", errors="replace")
        except OSError:
            continue
        rel = f.relative_to(project)
        for m in set(pattern.findall(content)):
            (server if is_server_only(rel) else client)[m].append(rel.as_posix())
        if LIVEKIT_SIGNING.search(content) and is_server_only(rel):
            signers.append(rel.as_posix())
    for name, files in client.items():
        if not files:
            continue
        out.append(
            Finding(
                f"nextjs.{name}",
                "warn",
                Text(
                    f"{name} é fixado no build e usado em {', '.join(sorted(files)[:5])}: muda a cada novo túnel.",
                    f"{name} is baked in at build time and used in {', '.join(sorted(files)[:5])}: it changes with every tunnel.",
                ),
                Text(
                    "Leia a URL em tempo de execução: fetch('/_linkpronto/api/runtime-config') → {site_url, livekit_url} "
                    "(ou deixe o linkpronto reiniciar o app com a variável nova: --app).",
                    "Read the URL at run time: fetch('/_linkpronto/api/runtime-config') → {site_url, livekit_url} "
                    "(or let linkpronto restart the app with the new variable: --app).",
                ),
            )
        )
    for name, files in server.items():
        if not files:
            continue
        out.append(
            Finding(
                f"nextjs.{name}.server",
                "info",
                Text(
                    f"{name} em {', '.join(sorted(files)[:5])} é lido no servidor, em tempo de execução (não é fixado "
                    "no build): com --app o linkpronto entrega o valor atual e reinicia o app quando o endereço muda.",
                    f"{name} in {', '.join(sorted(files)[:5])} is read on the server at run time (not baked in): with "
                    "--app linkpronto hands over the current value and restarts the app when the address changes.",
                ),
            )
        )
    if signers:
        out.append(
            Finding(
                "nextjs.livekit_tokens",
                "info",
                Text(
                    f"{', '.join(sorted(signers)[:5])} assina tokens do LiveKit com LIVEKIT_API_KEY/LIVEKIT_API_SECRET do "
                    "ambiente: com 'linkpronto up --app' ele recebe o par de chaves com que o LiveKit roda (gerado, "
                    "configurado ou da nuvem), e o 'room' da rota generate-consultation-token põe o profissional na "
                    "sala do paciente.",
                    f"{', '.join(sorted(signers)[:5])} signs LiveKit tokens with LIVEKIT_API_KEY/LIVEKIT_API_SECRET from its "
                    "environment: under 'linkpronto up --app' it gets the key pair LiveKit runs with (generated, "
                    "configured or cloud), and the generate-consultation-token route's 'room' puts the professional "
                    "in the patient's room.",
                ),
            )
        )
    return out


def _cat(tail: Text, head: Text) -> Text:
    return Text(head.pt + tail.pt, head.en + tail.en)


def _without_js_comments(source: str) -> str:
    """The config's code without ``// …`` and ``/* … */`` comments: a word in a comment sets nothing."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"(?m)(^|[^:])//.*$", r"\1", source)


def _allowed_dev_origins(settings: Settings, project: Path, config: Path) -> Finding:
    name = "nextjs.allowedDevOrigins"
    if "allowedDevOrigins" in _without_js_comments(config.read_text("utf-8", errors="replace")):
        return Finding(name, "ok", Text("allowedDevOrigins definido.", "allowedDevOrigins is set."))
    installed, declared = next_version(project)
    version = _version(installed or "") if installed else None
    shown = installed or (f"{declared} (não instalado)" if declared else "?")
    shown_en = installed or (f"{declared} (not installed)" if declared else "?")
    through_gateway = bool(settings.app.command or settings.app.port)
    gateway = Text(
        " Pelo linkpronto (--app / --app-port) nada muda: o gateway mostra ao 'next dev' o próprio Host/Origin dele.",
        " Through linkpronto (--app / --app-port) nothing changes: the gateway shows 'next dev' its own Host/Origin.",
    )
    if version is not None and version < NEXT_BLOCKS_FROM:
        return Finding(
            name,
            "info",
            _cat(gateway, Text(
                f"{config.name} não tem allowedDevOrigins. O next {shown} só avisa no terminal sobre pedidos de outra "
                "origem a /_next/* (a partir do 16.2 ele bloqueia).",
                f"{config.name} has no allowedDevOrigins. next {shown_en} only warns in its terminal about cross-origin "
                "requests to /_next/* (from 16.2 on it blocks them).",
            )),
        )
    message = Text(
        f"{config.name} não tem allowedDevOrigins: pelo túnel, o next {shown} bloqueia /_next/* e o HMR, e a página "
        "carrega mas não fica interativa.",
        f"{config.name} has no allowedDevOrigins: through a tunnel, next {shown_en} blocks /_next/* and HMR, and the "
        "page loads but never becomes interactive.",
    )
    if through_gateway:
        return Finding(name, "info", _cat(gateway, message))
    return Finding(
        name,
        "warn",
        message,
        Text(
            "Rode o app pelo linkpronto (linkpronto up --app \"npx next dev -p 3001\" --app-port 3001): o "
            "gateway reescreve Host/Origin e nada precisa mudar. Sem o linkpronto, adicione o host do túnel "
            "em allowedDevOrigins.",
            "Run the app through linkpronto (linkpronto up --app \"npx next dev -p 3001\" --app-port 3001): the "
            "gateway rewrites Host/Origin and nothing needs to change. Without linkpronto, add the tunnel host "
            "to allowedDevOrigins.",
        ),
    )


def check_firewall(settings: Settings) -> list[Finding]:
    if sys.platform != "win32" or settings.livekit.mode != "local":
        return []
    lk = settings.livekit
    cmd = (
        f'New-NetFirewallRule -DisplayName "LiveKit media" -Direction Inbound -Protocol UDP -LocalPort {lk.udp_port} '
        f'-Action Allow; New-NetFirewallRule -DisplayName "LiveKit ICE/TCP" -Direction Inbound -Protocol TCP '
        f"-LocalPort {lk.tcp_port} -Action Allow"
    )
    return [
        Finding(
            "windows.firewall",
            "info",
            Text(
                f"Celulares no mesmo Wi-Fi recebem vídeo direto nas portas UDP {lk.udp_port} e TCP {lk.tcp_port}; "
                "o Firewall do Windows pode bloqueá-las.",
                f"Phones on the same Wi-Fi get media straight on UDP {lk.udp_port} and TCP {lk.tcp_port}; "
                "Windows Firewall may block them.",
            ),
            Text(f"PowerShell como administrador: {cmd}", f"PowerShell as administrator: {cmd}"),
        )
    ]


def check_project(settings: Settings, project: Path) -> list[Finding]:
    """The app's own source: LiveKit URLs, rooms, open token routes, the data folder (project_scan)."""
    from linkpronto.project_scan import scan_project

    found = scan_project(project, data_dir=settings.data_dir, protected_routes=settings.app.protected_routes)
    return [
        Finding(f"project.{f.code.lower()}", f.level, f.message, f.fix, code=f.code, file=f.file, line=f.line or None)
        for f in found
    ]


def run_doctor(settings: Settings, project: Path) -> dict[str, Any]:
    from linkpronto.platform import read_orchestrator_info

    running = read_orchestrator_info(settings.data_dir) is not None
    project = project.resolve()
    findings: list[Finding] = [
        *check_binaries(settings),
        *check_ports(settings, running),
        *check_keys(settings),
        *check_tunnel(settings),
        *check_assets(),
        *check_next_project(settings, project),
        *check_project(settings, project),
        *check_firewall(settings),
    ]
    checks = [f.to_json() for f in findings]
    return {
        "ok": not any(f.level == "error" for f in findings),
        "warnings": sum(1 for f in findings if f.level == "warn"),
        "platform": sys.platform,
        "running": running,
        "config_path": str(settings.config_path) if settings.config_path else None,
        "checks": checks,
    }
