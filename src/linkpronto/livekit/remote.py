"""LiveKit that someone else runs: ``external`` (e.g. Docker, another machine) and ``cloud``.

Neither is started nor stopped by linkpronto; both are components whose state follows a health
check (``GET /`` answers ``OK`` — not on LiveKit Cloud — and ``/rtc/validate`` accepts a probe token
signed with the configured key pair). :class:`RoomAdmin` wraps the RoomService calls linkpronto
makes through ``livekit-api``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from livekit import api as lkapi

    from linkpronto.config import LivekitSettings

import httpx

from linkpronto.aio import wait_set
from linkpronto.components import Observable, PartStatus, utcnow
from linkpronto.errors import ConfigInvalid, LivekitUnhealthy
from linkpronto.i18n import Text
from linkpronto.livekit import tokens
from linkpronto.schema import PartState
from linkpronto.tls import client_context

log = logging.getLogger(__name__)

HEALTH_INTERVAL_S = 2.0
HEALTH_TIMEOUT_S = 3.0
#: The LiveKit ecosystem's credential variables (linkpronto reads them; children get them only when
#: their spec adds them back: the app, by app_env).
URL_ENV = "LIVEKIT_URL"
API_KEY_ENV = "LIVEKIT_API_KEY"
API_SECRET_ENV = "LIVEKIT_API_SECRET"
CREDENTIAL_ENV = (API_KEY_ENV, API_SECRET_ENV)


def http_base(url: str) -> str:
    """``wss://x.livekit.cloud`` → ``https://x.livekit.cloud`` (what HTTP clients talk to)."""
    if url.startswith("wss://"):
        return "https://" + url[len("wss://") :]
    if url.startswith("ws://"):
        return "http://" + url[len("ws://") :]
    return url.rstrip("/")


def ws_base(url: str) -> str:
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url.rstrip("/")


def key_accepted(status: int, body: str) -> bool:
    """``/rtc/validate`` accepted our probe token: 200, or — a LiveKit with ``room.auto_create: false``
    — 404 "requested room does not exist" (it checks the token's signature first: a wrong key is 401)."""
    return status == 200 or (status == 404 and "room does not exist" in body)


async def probe_livekit(
    client: httpx.AsyncClient,
    base_url: str,
    api_key: str,
    api_secret: str,
    *,
    expect_root_ok: bool = True,
    timeout_s: float = HEALTH_TIMEOUT_S,
) -> tuple[bool, Text]:
    """The one LiveKit health check: ``GET /`` answers ``OK`` (skipped for LiveKit Cloud, whose root is
    not ours) and ``/rtc/validate`` accepts a token signed with our key pair. Returns ``(ok, detail)``.

    Network errors raise (``httpx.HTTPError``): the caller decides what an unreachable server means
    (the supervisor's liveness probe counts it, :func:`check_livekit` turns it into a sentence)."""
    base = http_base(base_url)
    if expect_root_ok:
        root = await client.get(base + "/", timeout=timeout_s)
        if root.status_code != 200 or root.text.strip() != "OK":
            return False, Text(
                f"GET / respondeu {root.status_code} {root.text[:40]!r}, esperado 200 'OK'",
                f"GET / answered {root.status_code} {root.text[:40]!r}, expected 200 'OK'",
            )
    probe = tokens.probe_token(api_key, api_secret)
    res = await client.get(base + "/rtc/validate", params={"access_token": probe}, timeout=timeout_s)
    if res.status_code == 401:
        return False, Text("O LiveKit recusou nossa chave de API (401)", "LiveKit refused our API key/secret (401)")
    if not key_accepted(res.status_code, res.text):
        reason = res.text.strip()[:120]
        return False, Text(
            f"/rtc/validate respondeu {res.status_code} ({reason})", f"/rtc/validate answered {res.status_code} ({reason})"
        )
    return True, Text("OK", "OK")


async def check_livekit(
    client: httpx.AsyncClient, base_url: str, api_key: str, api_secret: str, *, expect_root_ok: bool = True
) -> tuple[bool, Text]:
    """Does LiveKit at ``base_url`` answer and accept our key pair? Returns ``(ok, detail)``; an
    unreachable server is a failed check with its reason (never raises for the network)."""
    try:
        return await probe_livekit(client, base_url, api_key, api_secret, expect_root_ok=expect_root_ok)
    except httpx.HTTPError as exc:
        base = http_base(base_url)
        return False, Text(f"sem resposta em {base} ({type(exc).__name__})", f"no answer at {base} ({type(exc).__name__})")


_MODE_PT = {"external": "externo", "cloud": "Cloud"}


class RemoteLivekit(Observable):
    """A LiveKit server that runs elsewhere; ready while its health check passes."""

    def __init__(
        self,
        mode: Literal["external", "cloud"],
        url: str,
        api_key: str,
        api_secret: str,
        *,
        interval_s: float = HEALTH_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.name = "livekit"
        self.mode = mode
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._secret = api_secret
        self.interval_s = interval_s
        self._status = PartStatus(detail=Text("ainda não verificado", "not checked yet"))
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()

    def status(self) -> PartStatus:
        return self._status

    async def start(self) -> None:
        if self._task is not None:
            return
        self._client = httpx.AsyncClient(verify=client_context())
        self._set(PartState.STARTING, Text(f"verificando o LiveKit {_MODE_PT[self.mode]} em {self.url}",
                                           f"checking {self.mode} LiveKit at {self.url}"))
        await self.check_now()
        self._task = asyncio.create_task(self._loop(), name="livekit-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._set(PartState.STOPPED, Text("", ""))

    async def check_now(self) -> bool:
        assert self._client is not None
        ok, detail = await check_livekit(
            self._client, self.url, self.api_key, self._secret, expect_root_ok=self.mode != "cloud"
        )
        if ok:
            if self._status.state is not PartState.EXTERNAL:
                self._set(PartState.EXTERNAL, Text(f"o LiveKit {_MODE_PT[self.mode]} em {self.url} responde",
                                                   f"{self.mode} LiveKit at {self.url} answers"))
        else:
            err = LivekitUnhealthy(
                Text(
                    f"O LiveKit em {self.url} não está respondendo como esperado: {detail.pt}.",
                    f"LiveKit at {self.url} is not answering as expected: {detail.en}.",
                ),
                fix=Text(
                    "Confira se o servidor LiveKit está rodando e se LIVEKIT_URL, LIVEKIT_API_KEY e "
                    "LIVEKIT_API_SECRET estão corretos.",
                    "Check that the LiveKit server is running and that LIVEKIT_URL, LIVEKIT_API_KEY and "
                    "LIVEKIT_API_SECRET are right.",
                ),
                detail=detail.en,
            )
            if self._status.state is not PartState.UNHEALTHY or self._status.detail != err.text:
                self._set(PartState.UNHEALTHY, err.text, err)
        return ok

    def poke(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            await wait_set(self._wake, self.interval_s)
            self._wake.clear()
            await self.check_now()

    def _set(self, state: PartState, detail: Text, error: LivekitUnhealthy | None = None) -> None:
        self._status = PartStatus(
            state=state, detail=detail, pid=None, restarts=0, since=utcnow(), error=error
        )
        self._notify()


#: How long a room linkpronto created waits for its first participant before LiveKit closes it.
ROOM_EMPTY_TIMEOUT_S = 300


class RoomAdmin:
    """RoomService calls (remove participants, count them) through ``livekit-api``."""

    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self.url = http_base(url)
        self.api_key = api_key
        self._secret = api_secret

    def _api(self) -> lkapi.LiveKitAPI:
        # livekit.api (and aiohttp under it) is imported on the first RoomService call, not at start-up.
        import aiohttp
        from livekit import api as lkapi

        return lkapi.LiveKitAPI(
            self.url, self.api_key, self._secret, timeout=aiohttp.ClientTimeout(total=5), failover=False
        )

    async def remove_all(self, room: str) -> int:
        """Remove everyone from ``room``; returns how many were removed (0 when LiveKit is down)."""
        import aiohttp
        from livekit import api as lkapi

        client = self._api()
        removed = 0
        try:
            res = await client.room.list_participants(lkapi.ListParticipantsRequest(room=room))
            for p in res.participants:
                await client.room.remove_participant(
                    lkapi.RoomParticipantIdentity(room=room, identity=p.identity)
                )
                removed += 1
        except (lkapi.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not remove participants of a revoked link's room: %s", type(exc).__name__)
        finally:
            await client.aclose()
        return removed

    async def create_room(self, room: str, empty_timeout_s: int = ROOM_EMPTY_TIMEOUT_S) -> str | None:
        """CreateRoom (idempotent: an existing room is returned as it is), so a LiveKit configured with
        ``room.auto_create: false`` (it answers 404 to a join for an unknown room) lets the patient in.
        None when the room exists; LiveKit's refusal (``code: msg``) when it said no; None too when it
        could not be reached (the join's own reachability check decides about that)."""
        import aiohttp
        from livekit import api as lkapi

        client = self._api()
        try:
            await client.room.create_room(lkapi.CreateRoomRequest(name=room, empty_timeout=empty_timeout_s))
            return None
        except lkapi.TwirpError as exc:
            return f"{exc.code}: {exc.message}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("CreateRoom for a join did not get an answer: %s", type(exc).__name__)
            return None
        finally:
            await client.aclose()

    async def total_participants(self) -> int | None:
        """Participants across all rooms (for on-demand idle stop); None when LiveKit is unreachable."""
        import aiohttp
        from livekit import api as lkapi

        client = self._api()
        try:
            res = await client.room.list_rooms(lkapi.ListRoomsRequest())
            from linkpronto.media import is_probe

            # Probe rooms (the media rung's, the patient's media check) are nobody: never keep a stack up.
            # ListRooms' num_participants is refreshed by livekit-server only every 5 s (v1.13.5's
            # roomUpdateInterval), so a patient who joined just before the count reads as 0 there: each
            # room's ListParticipants (answered by the room itself) is the count, probes left out.
            total = 0
            for r in res.rooms:
                if is_probe(room=r.name):
                    continue
                people = await client.room.list_participants(lkapi.ListParticipantsRequest(room=r.name))
                total += sum(1 for p in people.participants if not is_probe(identity=p.identity))
            return total
        except (lkapi.TwirpError, aiohttp.ClientError, TimeoutError):
            return None
        finally:
            await client.aclose()


def unmet_requirements(lk: LivekitSettings) -> list[ConfigInvalid]:
    """What ``doctor`` reports before ``up`` uses a LiveKit elsewhere (external, cloud): its URL and keys."""
    if lk.url and lk.api_key and lk.api_secret.get_secret_value():
        return []
    return [ConfigInvalid(
        Text(
            f"O modo {lk.mode} precisa de {URL_ENV}, {API_KEY_ENV} e {API_SECRET_ENV}.",
            f"The {lk.mode} mode needs {URL_ENV}, {API_KEY_ENV} and {API_SECRET_ENV}.",
        ),
        fix=Text(
            "Defina as três variáveis (no LiveKit Cloud: Settings > Keys).",
            "Set the three variables (on LiveKit Cloud: Settings > Keys).",
        ),
    )]
