"""The **Status** document (``GET /api/status``, every ``event: status``), rendered from one
:class:`~linkpronto.machine.Decision` and what the parts show. No decisions here: only rendering, in
one language."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from linkpronto import schema
from linkpronto.components import PartStatus
from linkpronto.errors import LinkprontoError
from linkpronto.i18n import Lang, Text
from linkpronto.machine import Decision
from linkpronto.media.wiring import status_media
from linkpronto.schema import PartState, StackState

if TYPE_CHECKING:
    from linkpronto.proof import ProofKeeper
    from linkpronto.tunnels.base import TunnelProvider


def problem(err: LinkprontoError | None, lang: Lang | None) -> schema.Problem | None:
    return err.to_schema(lang) if err is not None else None


def tunnel_info(tunnel: TunnelProvider | None, provider: str, lang: Lang | None) -> schema.TunnelInfo:
    if tunnel is None:
        return schema.TunnelInfo(provider=provider, state=PartState.STOPPED)
    return tunnel.describe().to_schema(lang)


def render(
    decision: Decision,
    *,
    state: StackState,
    since: datetime,
    reason: Text,
    mode: str,
    urls: tuple[str | None, str | None, str | None],
    tunnel: schema.TunnelInfo,
    parts: Mapping[str, PartStatus],
    proofs: ProofKeeper,
    extra_problems: Iterable[LinkprontoError] = (),
    lang: Lang | None = None,
) -> schema.Status:
    """``urls``: (public, LiveKit for browsers, admin). ``state``/``since``/``reason`` are the ones the
    runner applied (the decision's, once its loop carried it out); the problems are the decision's."""
    r = proofs.latest
    media = r.media if r is not None else None
    public_url, livekit_url, admin_url = urls
    return schema.Status(
        state=state,
        since=since,
        reason=reason.get(lang),
        mode=mode,  # type: ignore[arg-type]  # the settings' Literal
        public_url=public_url,
        livekit_url=livekit_url,
        admin_url=admin_url,
        tunnel=tunnel,
        components={name: st.to_schema(lang) for name, st in parts.items()},
        verification=schema.Verification(
            ok=bool(r and r.ok and proofs.current() is not None),
            stale=proofs.stale,
            checked_at=datetime.fromtimestamp(r.wall_time, tz=UTC) if r else None,
            age_s=round(time.monotonic() - r.checked_at, 2) if r else None,
            checks=[c.to_schema(lang) for c in r.checks] if r else [],
        ),
        media=status_media(r, media, lang),
        problems=[e.to_schema(lang) for e in [*decision.problems, *extra_problems]],
    )
