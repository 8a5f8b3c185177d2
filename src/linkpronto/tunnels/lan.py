"""``lan``: no tunnel; the public listener is reached at this computer's address on the local network.

Phones allow the camera and microphone only on HTTPS pages, and this address is plain HTTP, so the
status and ``doctor`` warn about it (``https`` is False). The public listener must bind to every
interface in this mode (the server settings do that when ``public_bind`` is empty).
"""

from __future__ import annotations

import socket

from linkpronto.i18n import Text
from linkpronto.tunnels.base import TunnelCallback, TunnelProvider

# A routable address that is never contacted: connect() on a UDP socket only picks the route.
_ROUTE_PROBE = ("10.255.255.255", 1)


def lan_address() -> str:
    """This computer's address on the network that holds the default route (127.0.0.1 if none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(_ROUTE_PROBE)
            address = str(sock.getsockname()[0])
        except OSError:
            return "127.0.0.1"
    return address if address and not address.startswith("0.") else "127.0.0.1"


class LanTunnel(TunnelProvider):
    name = "lan"
    https = False
    binds_lan = True
    tradeoff = Text(
        "Sem túnel nem conta: só funciona na mesma rede Wi-Fi e em HTTP, então celulares não liberam "
        "a câmera.",
        "No tunnel and no account: works only on the same Wi-Fi and over HTTP, so phones will not "
        "allow the camera.",
    )

    def __init__(self, local_port: int, on_event: TunnelCallback | None = None, host: str | None = None) -> None:
        super().__init__(local_port, on_event)
        self.host = host

    async def _open(self) -> str:
        host = self.host or lan_address()
        return f"http://{host}:{self.local_port}"

    async def _close(self) -> None:
        return None
