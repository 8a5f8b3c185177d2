"""The media rung plugged into today's :class:`linkpronto.stack.Stack` (kept here, so stack.py only
calls two functions and core's runner can re-wire them: see changes/media.md)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from linkpronto import schema
from linkpronto.i18n import Lang
from linkpronto.livekit.local import advertised_node_ip
from linkpronto.media.result import PathFacts
from linkpronto.media.rung import MediaKeeper, MediaRung, RungConfig, probe_url

if TYPE_CHECKING:
    from linkpronto.stack import Stack
    from linkpronto.verify import LadderResult, MediaAssessment


def rung_config(stack: Stack, public_url: str) -> RungConfig:
    lk = stack.settings.livekit
    tunnel = stack.tunnel
    forwards = bool(tunnel.facts.forwards_media) if tunnel is not None else False
    node_ip = advertised_node_ip(stack.settings)
    fallback = stack._assess_media(node_ip)
    api_url = stack.livekit_local_url or lk.url
    return RungConfig(
        url=probe_url(public_url, lk.mode, lk.url),
        api_url=api_url or "",
        api_key=stack.api_key,
        api_secret=stack._api_secret,
        facts=PathFacts(lk.mode, forwards, node_ip, lk.turn_url, own_addresses=own_addresses()),
        fallback_reach=fallback.reach,
        fallback_why=fallback.why,
    )


def own_addresses() -> frozenset[str]:
    """Every address of this machine's interfaces (psutil; loopback included)."""
    import socket

    import psutil

    try:
        return frozenset(a.address.split("%", 1)[0] for addrs in psutil.net_if_addrs().values() for a in addrs
                         if a.family in (socket.AF_INET, socket.AF_INET6))
    except (OSError, psutil.Error):
        return frozenset()


def _key(stack: Stack) -> Hashable:
    """A public URL change or a LiveKit (re)start makes the rung run at once."""
    lk = stack.livekit.status() if stack.livekit is not None else None
    return (stack.public_url, lk.restarts if lk else None, lk.pid if lk else None)


def media_keeper(stack: Stack) -> MediaKeeper:
    rung = MediaRung(lambda url: rung_config(stack, url))
    return MediaKeeper(
        rung.run,
        interval=stack.settings.verify.media_interval,
        key=lambda: _key(stack),
        public_url=lambda: stack.public_url,
        can_run=stack.can_verify,
        on_change=stack.invalidate,
    )


def status_media(result: LadderResult | None, assessment: MediaAssessment | None, lang: Lang | None) -> schema.Media:
    """The Status ``media`` object: what the proof's media check said."""
    if result is None or assessment is None:
        return schema.Media()
    m = result.media_result
    if m is None:
        return schema.Media(reach=assessment.reach, detail=assessment.why.get(lang))
    cand = schema.MediaCandidate(**m.candidate.to_json()) if m.candidate is not None else None
    return schema.Media(reach=m.reach, detail=m.detail.get(lang), measured=m.measured, candidate=cand,
                        first_frame_ms=round(m.first_frame_ms, 1) if m.first_frame_ms is not None else None)
