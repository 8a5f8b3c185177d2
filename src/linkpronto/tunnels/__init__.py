"""Tunnel providers behind one interface (:class:`TunnelProvider`), and :func:`build_tunnel`.

=============  ==================================================================================
provider       what it does
=============  ==================================================================================
``ngrok``      official ngrok SDK, in-process (authtoken; fixed dev domain with ``ngrok_domain``)
``ngrok-agent`` adopts a running ngrok agent through its local API, or runs ``ngrok http``
``cloudflared`` quick tunnel (no account, random URL) or named tunnel (token, fixed hostname)
``ssh``        ``ssh -R`` to your server, localhost.run or pinggy (optional ICE/TCP media forward)
``static``     a URL that is already public (production, own proxy, Tailscale Funnel)
``lan``        no tunnel: this computer's LAN address over HTTP
``auto``       the first that opens, in the order static, ngrok, ssh, cloudflared, lan
=============  ==================================================================================

Providers are imported lazily: choosing ``lan`` never loads the ngrok extension.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.tunnels.auto import Attempt, AutoTunnel, Candidate
from linkpronto.tunnels.base import (
    ProviderFacts,
    TunnelCallback,
    TunnelEvent,
    TunnelEventKind,
    TunnelProvider,
    TunnelStatus,
)

if TYPE_CHECKING:
    from linkpronto.config import Settings

__all__ = [
    "PROVIDERS",
    "Attempt",
    "AutoTunnel",
    "Candidate",
    "PartState",
    "TunnelCallback",
    "TunnelEvent",
    "TunnelEventKind",
    "TunnelProvider",
    "TunnelStatus",
    "auto_candidates",
    "build_provider",
    "build_tunnel",
    "possible_facts",
    "tradeoffs",
]

PROVIDERS: tuple[str, ...] = ("auto", "ngrok", "ngrok-agent", "cloudflared", "ssh", "static", "lan")


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if callable(getter) else str(value or "")


def build_provider(
    name: str, settings: Settings, *, on_event: TunnelCallback | None = None, install_allowed: bool = True
) -> TunnelProvider:
    """One concrete provider (not ``auto``) from the settings."""
    t = settings.tunnel
    port = settings.server.public_port
    if name == "ngrok":
        from linkpronto.tunnels.ngrok import NgrokTunnel

        return NgrokTunnel(port, _secret(t.ngrok_authtoken), t.ngrok_domain, on_event)
    if name == "ngrok-agent":
        from linkpronto.tunnels.ngrok_agent import NgrokAgentTunnel

        binary = str(getattr(t, "ngrok_binary", "") or "")
        return NgrokAgentTunnel(
            port,
            on_event,
            api_url=t.ngrok_agent_api,
            command=(binary,) if binary else None,
            authtoken=_secret(t.ngrok_authtoken),
            domain=t.ngrok_domain,
        )
    if name == "cloudflared":
        from linkpronto.tunnels.cloudflared import CloudflaredTunnel

        return CloudflaredTunnel(
            port,
            on_event,
            token=_secret(t.cloudflared_token),
            hostname=t.cloudflared_hostname,
            binary=t.cloudflared_binary,
            bin_dir=settings.data_dir / "bin",
            install_allowed=install_allowed,
        )
    if name == "ssh":
        from linkpronto.tunnels.ssh import SshTunnel

        if not t.ssh_target:
            raise ConfigInvalid(
                Text("O túnel 'ssh' precisa de tunnel.ssh_target.", "The 'ssh' tunnel needs tunnel.ssh_target."),
                fix=Text(
                    "Defina tunnel.ssh_target = \"usuario@servidor\" (sua VPS, ou nokey@localhost.run).",
                    "Set tunnel.ssh_target = \"user@host\" (your VPS, or nokey@localhost.run).",
                ),
            )
        return SshTunnel(
            port,
            t.ssh_target,
            on_event,
            identity=t.ssh_identity,
            remote_port=t.ssh_remote_port,
            public_url=t.ssh_public_url,
            forward_media=t.ssh_forward_media,
            media_port=settings.livekit.tcp_port,
            options=tuple(t.ssh_options),
            remote_bind=str(getattr(t, "ssh_remote_bind", "") or ""),
        )
    if name == "static":
        from linkpronto.tunnels.static import StaticTunnel

        return StaticTunnel(port, t.static_url, on_event)
    if name == "lan":
        from linkpronto.tunnels.lan import LanTunnel

        return LanTunnel(port, on_event)
    raise ConfigInvalid(
        Text(f"Provedor de túnel desconhecido: {name}", f"Unknown tunnel provider: {name}"),
        fix=Text(f"Use um destes: {', '.join(PROVIDERS)}.", f"Use one of: {', '.join(PROVIDERS)}."),
    )


_CLASSES = {
    "ngrok": ("linkpronto.tunnels.ngrok", "NgrokTunnel"),
    "ngrok-agent": ("linkpronto.tunnels.ngrok_agent", "NgrokAgentTunnel"),
    "cloudflared": ("linkpronto.tunnels.cloudflared", "CloudflaredTunnel"),
    "ssh": ("linkpronto.tunnels.ssh", "SshTunnel"),
    "static": ("linkpronto.tunnels.static", "StaticTunnel"),
    "lan": ("linkpronto.tunnels.lan", "LanTunnel"),
}
#: What ``auto`` may end on (its candidates, whichever are configured).
AUTO_MAY_CHOOSE = ("static", "ngrok", "ssh", "cloudflared", "lan")


def possible_facts(name: str) -> tuple[ProviderFacts, ...]:
    """The facts of each provider ``name`` may run as, before anything is opened (``auto``: every
    candidate). A decision that must hold for whichever is chosen reads all of them."""
    import importlib

    if name == "auto":
        return tuple(f for n in AUTO_MAY_CHOOSE for f in possible_facts(n))
    if name not in _CLASSES:
        return ()
    module, cls_name = _CLASSES[name]
    cls = getattr(importlib.import_module(module), cls_name)
    return (ProviderFacts(cls.https, cls.client_ip_header, cls.binds_lan, cls.forwards_media),)


def auto_candidates(settings: Settings, *, install_allowed: bool) -> list[Candidate]:
    """``auto``'s candidates in order, each buildable or with the reason it is skipped."""
    t = settings.tunnel

    def make(name: str) -> Candidate:
        return Candidate(name, lambda: build_provider(name, settings, install_allowed=install_allowed))

    out: list[Candidate] = []
    if t.static_url:
        out.append(make("static"))
    out.append(make("ngrok") if _secret(t.ngrok_authtoken)
               else Candidate("ngrok", None, Text("sem authtoken", "no authtoken")))
    out.append(make("ssh") if t.ssh_target else Candidate("ssh", None, Text("sem ssh_target", "no ssh_target")))
    from linkpronto.tunnels.cloudflared import find_cloudflared

    if find_cloudflared(t.cloudflared_binary, settings.data_dir / "bin") is not None or (
        install_allowed and not t.cloudflared_binary
    ):
        out.append(make("cloudflared"))
    else:
        out.append(Candidate("cloudflared", None, Text("não instalado e a instalação está desligada (--no-install)",
                                                        "not installed and installing is off (--no-install)")))
    out.append(make("lan"))
    return out


def build_tunnel(
    settings: Settings, *, on_event: TunnelCallback | None, install_allowed: bool
) -> TunnelProvider:
    """The provider chosen by ``tunnel.provider`` (``auto`` → :class:`AutoTunnel`)."""
    name = settings.tunnel.provider
    if name == "auto":
        return AutoTunnel(
            settings.server.public_port,
            auto_candidates(settings, install_allowed=install_allowed),
            on_event,
        )
    return build_provider(name, settings, on_event=on_event, install_allowed=install_allowed)


def tradeoffs() -> dict[str, Text]:
    """Each provider's one-line trade-off, for ``doctor`` and the dashboard."""
    from linkpronto.tunnels.cloudflared import NAMED_TRADEOFF, QUICK_TRADEOFF
    from linkpronto.tunnels.lan import LanTunnel
    from linkpronto.tunnels.ngrok import NGROK_TRADEOFF
    from linkpronto.tunnels.ssh import SSH_TRADEOFF
    from linkpronto.tunnels.static import StaticTunnel

    return {
        "auto": AutoTunnel.tradeoff,
        "ngrok": NGROK_TRADEOFF,
        "ngrok-agent": NGROK_TRADEOFF,
        "cloudflared": QUICK_TRADEOFF,
        "cloudflared-named": NAMED_TRADEOFF,
        "ssh": SSH_TRADEOFF,
        "static": StaticTunnel.tradeoff,
        "lan": LanTunnel.tradeoff,
    }
