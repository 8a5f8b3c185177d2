"""``auto``: try the candidates in order, keep the first that opens, and say why the others did not.

The order (decided by :func:`linkpronto.tunnels.build_tunnel`): ``static`` when a static URL is
configured, ``ngrok`` when an authtoken is available, ``ssh`` when a target is configured, a
``cloudflared`` quick tunnel (installed by itself unless ``--no-install``), then ``lan``. A candidate
that is not applicable is *skipped*; one that raises while opening has *failed*; both are listed in
the status detail (``auto: ngrok failed (TUNNEL_UNREACHABLE: ...); ssh skipped (no ssh_target)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from linkpronto.errors import LinkprontoError, TunnelUnreachable
from linkpronto.i18n import EMPTY, Text
from linkpronto.tunnels.base import ProviderFacts, TunnelCallback, TunnelEvent, TunnelProvider, TunnelStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider ``auto`` may use: ``build`` makes it, or ``skip_reason`` says why not (both
    languages: the dashboard renders it in the reader's)."""

    name: str
    build: Callable[[], TunnelProvider] | None
    skip_reason: Text | str = ""

    def __post_init__(self) -> None:
        if isinstance(self.skip_reason, str):
            object.__setattr__(self, "skip_reason", Text.same(self.skip_reason))


#: How an attempt ended, in both languages (the detail is rendered when the status is read).
OUTCOMES = {
    "skipped": Text("ignorado", "skipped"),
    "failed": Text("falhou", "failed"),
    "open": Text("aberto", "open"),
}


@dataclass(frozen=True, slots=True)
class Attempt:
    name: str
    outcome: str  # "skipped" | "failed" | "open"
    reason: Text = EMPTY
    error: LinkprontoError | None = None

    def describe(self) -> Text:
        said = Text.same(self.name + " ") + OUTCOMES[self.outcome]
        if self.reason.en or self.reason.pt:
            return said + " (" + self.reason + ")"
        return said


class AutoTunnel(TunnelProvider):
    name = "auto"
    tradeoff = Text(
        "Escolhe sozinho o melhor túnel disponível (ngrok, ssh, cloudflared, rede local) e passa para o "
        "próximo se um falhar.",
        "Picks the best available tunnel by itself (ngrok, ssh, cloudflared, local network) and moves to "
        "the next one if one fails.",
    )

    def __init__(
        self, local_port: int, candidates: Sequence[Candidate], on_event: TunnelCallback | None = None
    ) -> None:
        super().__init__(local_port, on_event)
        self.candidates = tuple(candidates)
        self.active: TunnelProvider | None = None
        self.attempts: list[Attempt] = []

    async def _open(self) -> str:
        self.attempts = []
        self.active = None
        failures: list[LinkprontoError] = []
        for candidate in self.candidates:
            if candidate.build is None:
                reason = candidate.skip_reason
                self.attempts.append(Attempt(candidate.name, "skipped", reason if isinstance(reason, Text) else
                                             Text.same(reason)))
                continue
            provider = candidate.build()
            provider.set_callback(self._forward)
            provider.subscribe(lambda _status: self._notify())  # the chosen provider's changes are ours
            try:
                url = await provider.open()
            except LinkprontoError as exc:
                log.warning("tunnel auto: %s failed: %s", candidate.name, exc)
                why = Text(f"{exc.code}: {exc.text.pt}", f"{exc.code}: {exc.text.en}")
                self.attempts.append(Attempt(candidate.name, "failed", why, exc))
                failures.append(exc)
                await provider.close()
                continue
            self.attempts.append(Attempt(candidate.name, "open"))
            self.active = provider
            self.https = provider.https
            self._status.tradeoff = provider.tradeoff
            return url
        summary = self._summary()
        first = failures[0] if failures else None
        raise TunnelUnreachable(
            Text(
                f"Nenhum túnel conseguiu abrir ({summary.pt}).",
                f"No tunnel could be opened ({summary.en}).",
            ),
            fix=first.fix_text
            if first is not None and first.fix_text is not None
            else Text(
                "Configure um provedor (tunnel.provider) ou rode 'linkpronto doctor' para ver o que falta.",
                "Configure a provider (tunnel.provider) or run 'linkpronto doctor' to see what is missing.",
            ),
            detail=summary.en,
        )

    async def _close(self) -> None:
        active, self.active = self.active, None
        if active is not None:
            await active.close()

    def describe(self) -> TunnelStatus:
        status = self._status
        active = self.active
        summary = self._summary(include_open=False)
        prefix = Text.same("auto: ") + summary if summary.en else Text.same("auto")
        if active is None:
            status.provider = self.name
            if status.detail.en and not status.detail.en.startswith("auto"):
                status.detail = prefix + "; " + status.detail
            elif not status.detail.en:
                status.detail = prefix
            return status
        inner = active.describe()
        status.provider = inner.provider
        status.state = inner.state
        status.public_url = inner.public_url
        status.reconnects = inner.reconnects
        status.last_error = inner.last_error
        status.tradeoff = inner.tradeoff
        status.since = inner.since
        status.detail = prefix + "; " + inner.detail if inner.detail.en else prefix
        return status

    @property
    def facts(self) -> ProviderFacts:
        """The facts of the provider ``auto`` chose (none chosen yet: nothing trusted, nothing bound)."""
        if self.active is not None:
            return self.active.facts
        return ProviderFacts(https=False, client_ip_header=None, binds_lan=False, forwards_media=False)

    def _summary(self, include_open: bool = True) -> Text:
        """``ngrok ignorado (sem authtoken); cloudflared falhou (INSTALL_FAILED: …)`` — both languages."""
        parts = [a.describe() for a in self.attempts if include_open or a.outcome != "open"]
        return Text("; ".join(p.pt for p in parts), "; ".join(p.en for p in parts))

    def _forward(self, event: TunnelEvent) -> None:
        self._emit(event)
