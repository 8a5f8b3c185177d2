"""``static``: a URL that is already public (production domain, own reverse proxy, Tailscale Funnel).

Nothing is started; ``open()`` only checks that a URL is configured. Whether that URL really reaches
this instance is the verification ladder's job (the probe through the public address).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.tunnels.base import TunnelCallback, TunnelProvider

if TYPE_CHECKING:
    from linkpronto.config import TunnelSettings


class StaticTunnel(TunnelProvider):
    name = "static"
    client_ip_header = "X-Forwarded-For"  # the clinic's own proxy (Caddy, nginx) appends it
    tradeoff = Text(
        "URL fixa sua (domínio próprio ou proxy); nada é iniciado, e a mídia de fora da rede depende "
        "do seu servidor LiveKit.",
        "Your own fixed URL (domain or proxy); nothing is started, and media from outside the network "
        "depends on your LiveKit server.",
    )

    def __init__(self, local_port: int, url: str, on_event: TunnelCallback | None = None) -> None:
        super().__init__(local_port, on_event)
        self.url = url.strip().rstrip("/")
        self.https = self.url.lower().startswith("https://")

    async def _open(self) -> str:
        if not self.url:
            raise ConfigInvalid(
                Text(
                    "O túnel 'static' precisa de um endereço público, e tunnel.static_url está vazio.",
                    "The 'static' tunnel needs a public address, and tunnel.static_url is empty.",
                ),
                fix=Text(
                    "Defina tunnel.static_url (ex.: https://consultas.suaclinica.com.br) ou use --tunnel auto.",
                    "Set tunnel.static_url (e.g. https://consultas.yourclinic.com) or use --tunnel auto.",
                ),
            )
        return self.url

    async def _close(self) -> None:
        return None


def unmet_requirements(t: TunnelSettings) -> list[ConfigInvalid]:
    """What ``doctor`` reports before ``up`` uses a fixed address: the address itself."""
    if t.static_url:
        return []
    return [ConfigInvalid(
        Text("O provedor static precisa de tunnel.static_url.", "The static provider needs tunnel.static_url."),
        fix=Text('Ex.: static_url = "https://consultas.suaclinica.com.br"',
                 'E.g. static_url = "https://consultas.yourclinic.com"'),
    )]
