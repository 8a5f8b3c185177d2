"""The verification ladder: proof, through the public address, that a link will work.

Each rung yields a :class:`Check` ``{name, ok, duration_ms, detail, fix}``. The stack runs the
ladder; a link is ``ready`` only when every *required* check passed within ``verify.max_age``.

1. ``livekit``        LiveKit answers locally and accepts our key pair (``/rtc/validate``).
2. ``app``            the user's app answers locally (only when one is configured).
3. ``public_probe``   the public URL reaches *this* instance (HMAC of a fresh nonce).
4. ``public_rtc``     LiveKit signalling works through the public URL (validate + WebSocket upgrade).
5. ``link_route``     what the patient needs answers through the public URL, with no tunnel warning page:
                      linkpronto's page and every file it loads (livekit-client; else ``ASSETS_MISSING``),
                      or the app's own link route answering 2xx for a probe link.
6. ``page``           (with an app) the app's link page opened by a headless phone-sized Chromium:
                      no failing same-origin call, no script error (:mod:`linkpronto.pagecheck`; its
                      own cadence, the latest result attached; "not checked" without a browser).
7. ``media``          the media rung (media/rung.py): a synthetic publisher and subscriber through the
                      public URL, measured on its own cadence; the ladder reads its latest result. Reach
                      ``none`` blocks links (``MEDIA_UNREACHABLE``); while the first measurement for a URL is
                      pending no link is ready. Without the rung (``linkpronto[media]`` missing,
                      ``verify.media_interval = 0``) the configuration's judgement, ``measured: false``,
                      informational as before.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx
import websockets
import websockets.exceptions

from linkpronto import errors, paths, schema
from linkpronto.i18n import EMPTY, Lang, Text
from linkpronto.livekit import tokens
from linkpronto.livekit.remote import check_livekit, http_base, ws_base
from linkpronto.tunnels import cloudflared, ngrok

if TYPE_CHECKING:
    from linkpronto.media.result import MediaResult

PROBE_PATH = paths.PROBE
CHECK_TIMEOUT_S = 5.0
BROWSER_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Mobile Safari/537.36"
)
#: What tunnel interstitials look like: each provider module says (ngrok free plan's browser warning,
#: cloudflare challenges).
WARNING_MARKERS = (*ngrok.WARNING_PAGE_MARKERS, *cloudflared.WARNING_PAGE_MARKERS)
#: Sent with the ladder's own (non-browser) requests, so a warning page does not hide the answer.
SKIP_WARNING = ngrok.SKIP_WARNING_HEADER

MediaReach = Literal["same-network", "anywhere", "none", "unknown"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    duration_ms: float
    detail: Text = EMPTY
    fix: Text | None = None
    required: bool = True

    def to_schema(self, lang: Lang | None = None) -> schema.Check:
        """The contract's **Check** (the wire's model), rendered in ``lang``."""
        return schema.Check(
            name=self.name,
            ok=self.ok,
            duration_ms=round(self.duration_ms, 2),
            detail=self.detail.get(lang),
            fix=self.fix.get(lang) if self.fix else None,
            required=self.required,
        )

    def to_json(self, lang: Lang | None = None) -> dict[str, Any]:
        return schema.dump(self.to_schema(lang))

    def to_stored(self) -> dict[str, Any]:
        """For a link row: both languages kept (rendered when the link is read)."""
        return {
            **self.to_json(),
            "detail": self.detail.to_json(),
            "fix": self.fix.to_json() if self.fix else None,
        }


@dataclass(frozen=True, slots=True)
class MediaAssessment:
    """Where devices can get media from, and why (typed: nothing parses it back from a string)."""

    reach: MediaReach
    why: Text


async def _ensure_probe_room(inp: LadderInput) -> None:
    """A LiveKit with ``room.auto_create: false`` answers 404 to a join for a room that does not exist:
    create the probe's room first (CreateRoom is idempotent). Its refusal shows in the check itself."""
    url = inp.livekit_local_url  # local and external modes; LiveKit Cloud creates rooms on join
    if not url:
        return
    from linkpronto.livekit.remote import RoomAdmin

    await RoomAdmin(url, inp.api_key, inp.api_secret).create_room(tokens.PROBE_ROOM, empty_timeout_s=60)


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
    #: Timeout of the app's rungs: the first-compile budget until a dev server warmed up (warmup.py).
    app_budget_s: float = 5.0
    #: The media rung's latest result for ``public_url`` (media/rung.py MediaKeeper.result_for).
    media_result: MediaResult | None = None
    #: The rung is on but has not measured ``public_url`` yet: no link is ready until it has.
    media_pending: bool = False


@dataclass(frozen=True, slots=True)
class LadderResult:
    checks: tuple[Check, ...]
    checked_at: float  # time.monotonic() when the run started
    wall_time: float  # time.time() when the run started
    media: MediaAssessment | None = None
    media_result: MediaResult | None = None  # the rung's measurement behind the media check, if any

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)

    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.required and not c.ok), None)

    def media_check(self) -> Check | None:
        return next((c for c in self.checks if c.name == "media"), None)


Outcome = tuple[bool, Text, Text | None]


async def _timed(name: str, fn: Callable[[], Awaitable[Outcome]], budget_s: float = CHECK_TIMEOUT_S) -> Check:
    t0 = time.perf_counter()
    try:
        ok, detail, fix = await asyncio.wait_for(fn(), budget_s)
    except TimeoutError:
        ok, detail, fix = False, Text(f"sem resposta em {budget_s:.0f} s",
                                      f"no answer within {budget_s:.0f} s"), FIX_TIMEOUT
    except (httpx.HTTPError, OSError, websockets.exceptions.WebSocketException) as exc:
        kind = type(exc).__name__
        ok, detail, fix = False, Text(f"a conexão falhou ({kind})", f"the connection failed ({kind})"), None
    return Check(name, ok, (time.perf_counter() - t0) * 1000, detail, None if ok else fix)


# The fix each kind of failed rung shows lives with its error class (errors.py, the one tree).
NO_URL = errors.NoPublicUrl.default_message
FIX_TIMEOUT = errors.CheckTimedOut.default_fix
FIX_LIVEKIT = errors.LivekitCheckFailed.default_fix
FIX_APP = errors.AppCheckFailed.default_fix
FIX_PROBE = errors.ProbeMismatch.default_fix
FIX_RTC = errors.SignallingUnreachable.default_fix
FIX_WARNING = errors.TunnelWarningPage.default_fix
FIX_LINK_ROUTE = errors.LinkRouteFailed.default_fix
FIX_APP_LINK_ROUTE = errors.AppLinkRouteMissing.default_fix
FIX_ASSETS = errors.AssetsMissing.ladder_fix
FIX_MEDIA = errors.MediaNotAnywhere.default_fix
FIX_NO_URL = errors.NoPublicUrl.default_fix
#: In every page linkpronto serves (its stylesheet link): tells its page from anything else.
PAGE_MARKER = "/_linkpronto/static/app.css"


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
        kind_pt = {"private": "privado", "cgnat": "CGNAT", "loopback": "local"}[kind]
        return MediaAssessment(
            "same-network",
            Text(
                f"A mídia vai direto para {node_ip} (endereço {kind_pt}): só aparelhos nesta rede terão vídeo.",
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


MEDIA_PENDING = Text("medindo o vídeo pelo endereço público (teste de vídeo em andamento)",
                     "measuring video through the public URL (video check in progress)")


def media_check(inp: LadderInput) -> tuple[Check, MediaAssessment]:
    """The ``media`` check: the rung's measurement when there is one, else the configuration's judgement."""
    r = inp.media_result
    if r is not None:
        assessment = MediaAssessment(r.reach, r.detail)
        if r.measured:
            # ok only when frames were decoded; reach none blocks links (MEDIA_UNREACHABLE).
            return Check("media", r.ok, r.duration_ms, r.detail, r.fix, required=True), assessment
        return Check("media", r.reach == "anywhere", 0.0, r.detail, r.fix, required=False), assessment
    if inp.media_pending:
        return Check("media", False, 0.0, MEDIA_PENDING, None, required=True), inp.media
    m = inp.media
    ok = m.reach == "anywhere"
    return Check("media", ok, 0.0, m.why, None if ok else FIX_MEDIA, required=False), m


class PageChecker(Protocol):
    """The page rung (:class:`linkpronto.pagecheck.PageRung`): the latest ``page`` check, at once."""

    def check(self, url: str | None) -> Check | None: ...


def app_page_url(inp: LadderInput) -> str | None:
    """The app's own link page for the probe link through the public URL (None: no app page)."""
    if inp.app_url is None or not inp.public_url or paths.is_own(inp.link_path.split("{token}", 1)[0]):
        return None
    return inp.public_url + inp.link_path.replace("{token}", paths.PROBE_TOKEN)


class Ladder:
    def __init__(self, client: httpx.AsyncClient, page: PageChecker | None = None) -> None:
        self.client = client
        self.page = page

    async def run(self, inp: LadderInput) -> LadderResult:
        # The result is as old as its start: anything that changed during the run makes it stale.
        started, started_wall = time.monotonic(), time.time()
        local: list[Awaitable[Check]] = [self._livekit(inp)]
        if inp.app_url:
            local.append(self._app(inp))
        public: list[Awaitable[Check]] = [self._probe(inp), self._rtc(inp), self._link_route(inp)]
        checks = await asyncio.gather(*local, *public)
        page = self.page.check(app_page_url(inp)) if self.page is not None else None
        if page is not None:
            checks.append(page)  # the latest result of its own, slower cadence: never waited for
        media, assessment = media_check(inp)
        return LadderResult((*checks, media), started, started_wall, assessment, inp.media_result)

    # -- rungs -----------------------------------------------------------------------------------
    def _livekit(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> Outcome:
            url = inp.livekit_local_url or inp.livekit_cloud_url
            if not url:
                return False, Text("o LiveKit não está configurado", "LiveKit is not configured"), FIX_LIVEKIT
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
        async def go() -> Outcome:
            assert inp.app_url
            res = await self.client.get(inp.app_url + inp.app_health_path, timeout=inp.app_budget_s)
            return res.status_code < 500, Text.same(f"HTTP {res.status_code}"), FIX_APP

        return _timed("app", go, max(CHECK_TIMEOUT_S, inp.app_budget_s))

    def _probe(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> Outcome:
            if not inp.public_url:
                return False, NO_URL, FIX_NO_URL
            nonce = secrets.token_hex(16)
            res = await self.client.get(
                inp.public_url + PROBE_PATH,
                params={"nonce": nonce},
                headers=SKIP_WARNING,
                timeout=CHECK_TIMEOUT_S,
            )
            if res.status_code != 200:
                return False, Text(f"{inp.public_url} respondeu HTTP {res.status_code}",
                                   f"{inp.public_url} answered HTTP {res.status_code}"), FIX_PROBE
            try:
                body = res.json()
            except ValueError:
                return False, Text(f"{inp.public_url} respondeu algo que não é o linkpronto",
                                   f"{inp.public_url} answered something that is not linkpronto"), FIX_PROBE
            if not isinstance(body, dict) or body.get("nonce") != nonce:
                return False, Text("a resposta da sonda não repete o nosso nonce",
                                   "the probe answer does not echo our nonce"), FIX_PROBE
            if body.get("instance") != inp.instance_id or body.get("mac") != inp.probe_mac(nonce):
                return False, Text("outra instância do linkpronto responde neste endereço (túnel antigo)",
                                   "another linkpronto instance answers at this address (stale tunnel)"), FIX_PROBE
            return True, Text(f"{inp.public_url} chega a esta instância", f"{inp.public_url} reaches this instance"), None

        return _timed("public_probe", go)

    def _rtc(self, inp: LadderInput) -> Awaitable[Check]:
        async def go() -> Outcome:
            if inp.livekit_cloud_url:
                # Signalling goes straight to LiveKit Cloud, not through our public URL.
                ok, detail = await check_livekit(
                    self.client, inp.livekit_cloud_url, inp.api_key, inp.api_secret, expect_root_ok=False
                )
                return ok, Text.same("LiveKit Cloud: ") + detail, FIX_LIVEKIT
            if not inp.public_url:
                return False, NO_URL, FIX_NO_URL
            probe = tokens.probe_token(inp.api_key, inp.api_secret)
            await _ensure_probe_room(inp)
            res = await self.client.get(
                http_base(inp.public_url) + paths.LIVEKIT + "/rtc/validate",
                params={"access_token": probe},
                headers=SKIP_WARNING,
                timeout=CHECK_TIMEOUT_S,
            )
            if res.status_code != 200:
                return False, Text(f"{paths.LIVEKIT}/rtc/validate pelo endereço público respondeu {res.status_code}",
                                   f"{paths.LIVEKIT}/rtc/validate through the public URL answered {res.status_code}"), FIX_RTC
            ws_url = ws_base(inp.public_url) + paths.LIVEKIT + "/rtc?access_token=" + probe + "&auto_subscribe=0"
            async with websockets.connect(
                ws_url, open_timeout=CHECK_TIMEOUT_S, close_timeout=1, max_size=2**20
            ):
                pass
            return True, Text("validate e WebSocket pelo endereço público",
                              "validate and WebSocket upgrade through the public URL"), None

        return _timed("public_rtc", go)

    def _link_route(self, inp: LadderInput) -> Awaitable[Check]:
        """What the patient needs: linkpronto's page and every file it loads (livekit-client included),
        or the app's own link route answering 2xx for a probe link — through the public URL."""
        own_page = inp.app_url is None or paths.is_own(inp.link_path.split("{token}", 1)[0])
        budget = CHECK_TIMEOUT_S if own_page else max(CHECK_TIMEOUT_S, inp.app_budget_s)

        async def go() -> Outcome:
            from linkpronto.web.assets import vendor_ready

            if not inp.public_url:
                return False, NO_URL, FIX_NO_URL
            if own_page and not vendor_ready():
                return False, Text(
                    f"{errors.AssetsMissing.code}: {paths.LIVEKIT_BUNDLE} não está instalado nesta cópia do linkpronto",
                    f"{errors.AssetsMissing.code}: {paths.LIVEKIT_BUNDLE} is not installed in this copy of linkpronto",
                ), FIX_ASSETS
            path = inp.link_path.replace("{token}", paths.PROBE_TOKEN)
            # A browser User-Agent, so a tunnel that shows browsers a warning page shows it to us too.
            res = await self.client.get(
                inp.public_url + path, headers={"User-Agent": BROWSER_UA, "Accept": "text/html"}, timeout=budget
            )
            body = res.text[:20000]
            if any(m in body for m in WARNING_MARKERS):
                return False, errors.TunnelWarningPage.default_message, FIX_WARNING
            if not own_page:
                if 200 <= res.status_code < 300:
                    return True, Text(
                        f"a rota de link do app responde HTTP {res.status_code} a um link de teste",
                        f"the app's link route answers HTTP {res.status_code} for a probe link",
                    ), None
                return False, Text(
                    f"a rota de link do app {path} respondeu HTTP {res.status_code} a um link de teste",
                    f"the app's link route {path} answered HTTP {res.status_code} for a probe link",
                ), FIX_APP_LINK_ROUTE
            # linkpronto's own page answers a probe link with its "unknown link" page (404, by design).
            if PAGE_MARKER not in body:
                return False, Text(
                    f"a página do linkpronto não respondeu pelo endereço público (HTTP {res.status_code})",
                    f"linkpronto's page did not answer through the public URL (HTTP {res.status_code})",
                ), FIX_LINK_ROUTE
            missing = await self._missing_files(inp.public_url)
            if missing:
                return False, Text.same(f"{errors.AssetsMissing.code}: " + "; ".join(missing)), FIX_ASSETS
            return True, Text(
                "a página do linkpronto e seus arquivos (incluindo o livekit-client) carregam pelo endereço público",
                "linkpronto's page and its files (livekit-client included) load through the public URL",
            ), None

        return _timed("link_route", go, budget)

    async def _missing_files(self, public_url: str) -> list[str]:
        async def one(name: str) -> str | None:
            res = await self.client.head(
                f"{public_url}{paths.STATIC}/{name}",
                headers={"User-Agent": BROWSER_UA, **SKIP_WARNING},
                timeout=CHECK_TIMEOUT_S,
            )
            if res.status_code != 200 or res.headers.get("content-length") == "0":
                return f"{name} answered HTTP {res.status_code}"
            return None

        found = await asyncio.gather(*(one(n) for n in paths.PATIENT_FILES))
        return [m for m in found if m is not None]
