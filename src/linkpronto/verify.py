"""The verification ladder: proof, through the public address, that a link will work.

Each rung yields a :class:`Check` ``{name, ok, duration_ms, detail, fix}``. The stack runs the
ladder; a link is ``ready`` only when every *required* check passed within ``verify.max_age``.

1. ``livekit``        LiveKit answers locally and accepts our key pair (``/rtc/validate``).
2. ``app``            the user's app answers locally (only when one is configured).
3. ``public_probe``   the public URL reaches *this* instance (HMAC of a fresh nonce).
4. ``public_rtc``     LiveKit signalling works through the public URL (validate + WebSocket upgrade).
5. ``link_route``     the link's page answers through the public URL, with no tunnel warning page.
6. ``media``          where devices can get media from (informational, never blocks a link).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import websockets

from linkpronto.i18n import Lang, Text
from linkpronto.livekit import tokens
from linkpronto.livekit.remote import check_livekit, http_base, ws_base

PROBE_PATH = "/.well-known/linkpronto/probe"
LINK_PROBE_TOKEN = "linkpronto-probe"
CHECK_TIMEOUT_S = 5.0
BROWSER_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36"
)
# What tunnel interstitials look like (ngrok free plan's browser warning, cloudflare challenges).
WARNING_MARKERS = ("ngrok-skip-browser-warning", "You are about to visit", "cf-browser-verification")

MediaReach = Literal["same-network", "anywhere", "unknown"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    duration_ms: float
    detail: str = ""
    fix: Text | None = None
    required: bool = True

    def to_json(self, lang: Lang | None = None) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "duration_ms": round(self.duration_ms, 2),
            "detail": self.detail,
            "fix": self.fix.get(lang) if self.fix else None,
            "required": self.required,
        }


@dataclass(frozen=True, slots=True)
class MediaAssessment:
    """Where devices can get media from, and why (typed: nothing parses it back from a string)."""

    reach: MediaReach
    why: Text


@dataclass(frozen=True, slots=True)
class LadderInput:
    """What the ladder needs to know about the stack right now."""

    public_url: str | None
    instance_id: str
    probe_mac: Callable[[str], str]
    api_key: str
    api_secret: str
    livekit_local_url: str | None  # http://127.0.0.1:7880 in local/external modes
    livekit_cloud_url: str | None  # wss://x.livekit.cloud in cloud mode
    app_url: str | None
    app_health_path: str
    link_path: str
    media: MediaAssessment


@dataclass(frozen=True, slots=True)
class LadderResult:
    checks: tuple[Check, ...]
    checked_at: float  # time.monotonic() when the run started
    wall_time: float  # time.time() when the run started
    media: MediaAssessment | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.required and not c.ok), None)

    def media_check(self) -> Check | None:
        return next((c for c in self.checks if c.name == "media"), None)


async def _timed(name: str, fn: Callable[[], Awaitable[tuple[bool, str, Text | None]]]) -> Check:
    t0 = time.perf_counter()
    try:
        ok, detail, fix = await asyncio.wait_for(fn(), CHECK_TIMEOUT_S)
    except TimeoutError:
        ok, detail, fix = False, f"no answer within {CHECK_TIMEOUT_S:.0f} s", FIX_TIMEOUT
    except (httpx.HTTPError, OSError, websockets.exceptions.WebSocketException) as exc:
        ok, detail, fix = False, f"{type(exc).__name__}: {exc}"[:300], None
    return Check(name, ok, (time.perf_counter() - t0) * 1000, detail, None if ok else fix)


FIX_TIMEOUT = Text(
    "A verificação demorou demais. Confira sua conexão com a internet.",
    "The check took too long. Check your internet connection.",
)
FIX_LIVEKIT = Text(
    "Confira se o LiveKit está rodando (linkpronto status) e se as chaves estão corretas.",
    "Check that LiveKit is running (linkpronto status) and that its keys are right.",
)
FIX_APP = Text(
    "Seu app não respondeu na porta configurada. Confira --app e --app-port.",
    "Your app did not answer on the configured port. Check --app and --app-port.",
)
FIX_PROBE = Text(
    "O endereço público não leva a este computador (túnel antigo ou parado). O linkpronto vai "
    "reabrir o túnel; se persistir, reinicie com: linkpronto down && linkpronto up",
    "The public address does not lead to this computer (old or stopped tunnel). linkpronto will "
    "reopen the tunnel; if it persists, restart with: linkpronto down && linkpronto up",
)
FIX_RTC = Text(
    "A sinalização do LiveKit não passa pelo endereço público. Confira o modo do LiveKit e o túnel.",
    "LiveKit signalling does not get through the public address. Check the LiveKit mode and the tunnel.",
)
FIX_WARNING = Text(
    "O túnel mostra uma página de aviso antes do link (plano gratuito do ngrok). Use um domínio "
    "próprio, cloudflared ou ssh (linkpronto up --tunnel cloudflared).",
    "The tunnel shows a warning page before the link (ngrok free plan). Use your own domain, "
    "cloudflared or ssh (linkpronto up --tunnel cloudflared).",
)
FIX_LINK_ROUTE = Text(
    "A página do link não respondeu pelo endereço público. Confira o app e o link_path.",
    "The link's page did not answer through the public address. Check the app and link_path.",
)
FIX_MEDIA = Text(
    "Celulares fora desta rede não terão vídeo. Use LiveKit Cloud (--livekit cloud), um VPS com "
    "--tunnel ssh e ssh_forward_media = true, ou configure TURN (livekit.turn_url).",
    "Phones outside this network will get no video. Use LiveKit Cloud (--livekit cloud), a VPS "
    "with --tunnel ssh and ssh_forward_media = true, or configure TURN (livekit.turn_url).",
)
FIX_NO_URL = Text(
    "O túnel ainda não tem endereço público. Aguarde; veja 'linkpronto status' para o motivo.",
    "The tunnel has no public address yet. Wait; see 'linkpronto status' for the reason.",
)


def classify_address(addr: str) -> Literal["private", "cgnat", "public", "loopback", "unknown"]:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return "unknown"
    if ip.is_loopback:
        return "loopback"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "cgnat"
    if ip.is_private or ip.is_link_local:
        return "private"
    return "public"


def assess_media(
    *,
    livekit_mode: str,
    node_ip: str,
    turn_url: str,
    forwards_media: bool,
) -> MediaAssessment:
    """Where a device can get media from, honestly, with the reason. ``forwards_media`` is the tunnel
    provider's fact (ssh with ``ssh_forward_media``)."""
    if livekit_mode == "cloud":
        return MediaAssessment(
            "anywhere",
            Text(
                "O LiveKit Cloud entrega a mídia para aparelhos em qualquer rede.",
                "LiveKit Cloud relays media for devices on any network.",
            ),
        )
    if turn_url:
        return MediaAssessment(
            "anywhere",
            Text(
                f"O TURN em {turn_url} entrega a mídia para aparelhos fora desta rede.",
                f"TURN at {turn_url} relays media for devices outside this network.",
            ),
        )
    if forwards_media:
        return MediaAssessment(
            "anywhere",
            Text(
                "A porta ICE/TCP do LiveKit é encaminhada para o endereço público do servidor ssh.",
                "LiveKit's ICE/TCP port is forwarded to the ssh server's public address.",
            ),
        )
    kind = classify_address(node_ip) if node_ip else "unknown"
    if kind == "public":
        return MediaAssessment(
            "anywhere",
            Text(f"O LiveKit anuncia o endereço público {node_ip}.", f"LiveKit advertises the public address {node_ip}."),
        )
    if kind in ("private", "cgnat", "loopback"):
        return MediaAssessment(
            "same-network",
            Text(
                f"A mídia vai direto para {node_ip} (endereço {kind}): só aparelhos nesta rede terão vídeo.",
                f"Media goes straight to {node_ip} ({kind} address): only devices on this network get video.",
            ),
        )
    return MediaAssessment(
        "unknown",
        Text(
            "O endereço que o LiveKit anuncia para a mídia não é conhecido.",
            "The address LiveKit advertises for media is not known.",
        ),
    )


class Ladder:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def run(self, inp: LadderInput) -> LadderResult:
        # The result is as old as its start: anything that changed during the run makes it stale.
        started, started_wall = time.monotonic(), time.time()
        local: list[Awaitable[Check]] = [self._livekit(inp)]
        if inp.app_url:
            local.append(self._app(inp))
        public: list[Awaitable[Check]] = [self._probe(inp), self._rtc(inp), self._link_route(inp)]
        checks = await asyncio.gather(*local, *public)
        m = inp.media
        ok = m.reach == "anywhere"
        media = Check("media", ok, 0.0, f"{m.reach}: {m.why.en}", None if ok else FIX_MEDIA, required=False)
        return LadderResult((*checks, media), started, started_wall, m)

    # -- rungs -----------------------------------------------------------------------------------
    def _livekit(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> tuple[bool, str, Text | None]:
            url = inp.livekit_local_url or inp.livekit_cloud_url
            if not url:
                return False, "LiveKit is not configured", FIX_LIVEKIT
            ok, detail = await check_livekit(
                self.client,
                url,
                inp.api_key,
                inp.api_secret,
                expect_root_ok=inp.livekit_local_url is not None,
            )
            return ok, detail, FIX_LIVEKIT

        return _timed("livekit", go)

    def _app(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> tuple[bool, str, Text | None]:
            assert inp.app_url
            res = await self.client.get(inp.app_url + inp.app_health_path, timeout=CHECK_TIMEOUT_S)
            return res.status_code < 500, f"HTTP {res.status_code}", FIX_APP

        return _timed("app", go)

    def _probe(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> tuple[bool, str, Text | None]:
            if not inp.public_url:
                return False, "no public URL yet", FIX_NO_URL
            nonce = secrets.token_hex(16)
            res = await self.client.get(
                inp.public_url + PROBE_PATH,
                params={"nonce": nonce},
                headers={"ngrok-skip-browser-warning": "1"},
                timeout=CHECK_TIMEOUT_S,
            )
            if res.status_code != 200:
                return False, f"{inp.public_url} answered HTTP {res.status_code}", FIX_PROBE
            try:
                body = res.json()
            except ValueError:
                return False, f"{inp.public_url} answered something that is not linkpronto", FIX_PROBE
            if not isinstance(body, dict) or body.get("nonce") != nonce:
                return False, "the probe answer does not echo our nonce", FIX_PROBE
            if body.get("instance") != inp.instance_id or body.get("mac") != inp.probe_mac(nonce):
                return False, "another linkpronto instance answers at this address (stale tunnel)", FIX_PROBE
            return True, f"{inp.public_url} reaches this instance", None

        return _timed("public_probe", go)

    def _rtc(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> tuple[bool, str, Text | None]:
            if inp.livekit_cloud_url:
                # Signalling goes straight to LiveKit Cloud, not through our public URL.
                ok, detail = await check_livekit(
                    self.client, inp.livekit_cloud_url, inp.api_key, inp.api_secret, expect_root_ok=False
                )
                return ok, f"LiveKit Cloud: {detail}", FIX_LIVEKIT
            if not inp.public_url:
                return False, "no public URL yet", FIX_NO_URL
            probe = tokens.probe_token(inp.api_key, inp.api_secret)
            res = await self.client.get(
                http_base(inp.public_url) + "/rtc/validate",
                params={"access_token": probe},
                headers={"ngrok-skip-browser-warning": "1"},
                timeout=CHECK_TIMEOUT_S,
            )
            if res.status_code != 200:
                return False, f"/rtc/validate through the public URL answered {res.status_code}", FIX_RTC
            ws_url = ws_base(inp.public_url) + "/rtc?access_token=" + probe + "&auto_subscribe=0"
            async with websockets.connect(
                ws_url, open_timeout=CHECK_TIMEOUT_S, close_timeout=1, max_size=2**20
            ):
                pass
            return True, "validate and WebSocket upgrade through the public URL", None

        return _timed("public_rtc", go)

    def _link_route(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> tuple[bool, str, Text | None]:
            if not inp.public_url:
                return False, "no public URL yet", FIX_NO_URL
            url = inp.public_url + inp.link_path.replace("{token}", LINK_PROBE_TOKEN)
            # A browser User-Agent, so a tunnel that shows browsers a warning page shows it to us too.
            res = await self.client.get(
                url, headers={"User-Agent": BROWSER_UA, "Accept": "text/html"}, timeout=CHECK_TIMEOUT_S
            )
            body = res.text[:20000]
            if any(m in body for m in WARNING_MARKERS):
                return False, "a tunnel warning page stands in front of the link", FIX_WARNING
            if res.status_code >= 500:
                return False, f"the link page answered HTTP {res.status_code}", FIX_LINK_ROUTE
            return True, f"HTTP {res.status_code}", None

        return _timed("link_route", go)
