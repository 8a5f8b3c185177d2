"""What a supervised app (``--app``) finds in its environment (CONTRACT.md, "The user's app").

=========================  ===========================================================================
``NEXT_PUBLIC_SITE_URL``   the public URL (``https://abc.trycloudflare.com``)
``NEXT_PUBLIC_LIVEKIT_URL`` the browser's LiveKit URL: ``wss://<public>/_linkpronto/livekit`` (local and
                           external modes) or the LiveKit Cloud URL
``LIVEKIT_URL``            the same URL as ``NEXT_PUBLIC_LIVEKIT_URL`` — LiveKit's own convention: the URL
                           clients connect to, so a token route that answers ``wsUrl: LIVEKIT_URL`` (as
                           LiveKit's examples do) hands a phone a URL it can reach. Server SDKs work with it
                           too: RoomService calls (``/twirp/livekit.RoomService/*``) pass the public gateway
                           when they carry a JWT signed with this stack's key pair (gateway/twirp_auth.py)
``LINKPRONTO_LIVEKIT_INTERNAL_URL`` LiveKit on loopback (``ws://127.0.0.1:7880``; external mode: its URL; cloud:
                           the cloud URL), for server code that prefers not to go through the tunnel
``LIVEKIT_API_KEY``        the key pair LiveKit is running with — generated (local mode), configured
``LIVEKIT_API_SECRET``     (external) or the cloud project's — so the app's own token route signs tokens
                           this LiveKit accepts, for the same rooms linkpronto's links use
``LINKPRONTO_ADMIN_URL``   the admin API (``http://127.0.0.1:7800``) and its bearer token, for the
``LINKPRONTO_ADMIN_TOKEN`` drop-in ``POST /api/generate-consultation-token``
``LINKPRONTO_PUBLIC_URL``  the public URL again, under linkpronto's own name
``LINKPRONTO_EVENTS_SECRET`` the HMAC key of the presence callbacks to ``app.events_url`` (linkpronto.events)
``LINKPRONTO_LOCAL_SECRET`` a random secret made at each start of linkpronto: a request to the app that
                           carries it in ``X-Linkpronto-Local`` comes from code on this computer that read
                           the app's environment (the examples' guard takes it as the professional's own,
                           like a loopback peer). The public gateway drops every client copy of that header
``PORT``                   the app's port, when one is configured
=========================  ===========================================================================

Tunnel credentials (``NGROK_AUTHTOKEN``, ``TUNNEL_TOKEN``, ``CLOUDFLARED_TOKEN``) are never added here;
the supervisor also removes inherited copies before the app starts. The values are computed when the
app is (re)started: a new public URL restarts the app (``app.restart_on_url_change``).
"""

from __future__ import annotations

from linkpronto import paths
from linkpronto.livekit.remote import ws_base


def app_environment(
    *,
    public_url: str | None,
    livekit_browser_url: str | None,
    livekit_server_url: str | None,
    api_key: str,
    api_secret: str,
    admin_url: str,
    admin_token: str,
    port: int | None,
    events_secret: str = "",
    local_secret: str = "",
) -> dict[str, str]:
    """The variables above, as strings (an unknown URL is an empty string, never a stale one)."""
    env = {
        "NEXT_PUBLIC_SITE_URL": public_url or "",
        "NEXT_PUBLIC_LIVEKIT_URL": livekit_browser_url or "",
        "LIVEKIT_URL": livekit_browser_url or "",
        "LINKPRONTO_LIVEKIT_INTERNAL_URL": ws_base(livekit_server_url) if livekit_server_url else "",
        "LIVEKIT_API_KEY": api_key,
        "LIVEKIT_API_SECRET": api_secret,
        "LINKPRONTO_ADMIN_URL": admin_url,
        "LINKPRONTO_ADMIN_TOKEN": admin_token,
        "LINKPRONTO_PUBLIC_URL": public_url or "",
    }
    if events_secret:
        env["LINKPRONTO_EVENTS_SECRET"] = events_secret
    if local_secret:
        env["LINKPRONTO_LOCAL_SECRET"] = local_secret
    if port:
        env["PORT"] = str(port)
    return env


def link_template(link_path: str, *, has_app: bool) -> str:
    """The path of the links linkpronto issues.

    ``app.link_path`` as configured — the app's own route (``/consultations/client/{token}``) — except
    that with an app and the default ``/c/{token}``, which then belongs to the app, links point at
    linkpronto's own page ``/_linkpronto/c/{token}`` instead of at a route the app may not have.
    """
    if has_app and link_path == paths.SHORT_PATIENT_PAGE:
        return paths.PATIENT_PAGE
    return link_path
