"""Issuing consultation links, apart from the stack: the link issuer depends on a proof source only.

:class:`LinkIssuer` is the one async face of links for the web layer and the CLI: create (ready at
once under a proof that still counts; otherwise it runs the ladder at once — shared with any run in
flight — and waits for that run only), get, list, revoke, host token, resolve, join, device check,
and the rendered :class:`~linkpronto.schema.Link` document. Store calls run on the store's own
executor here, so nothing above this module knows about executors or ``stack.store``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from linkpronto.errors import LinkprontoError
from linkpronto.i18n import Lang
from linkpronto.links.service import JoinGrant, LinkService
from linkpronto.links.store import LinkRow
from linkpronto.proof import ProofSource
from linkpronto.schema import Link


class StackControl(Protocol):
    """What the issuer asks of whatever runs the stack."""

    def failure(self) -> LinkprontoError | None:
        """The error that keeps the stack from becoming ready unattended (503), or None."""

    async def ensure_started(self) -> None:
        """On-demand mode: a link request starts the stack."""

    def touch(self) -> None:
        """Someone is using the stack (on-demand idle timer)."""

    def poke(self) -> None:
        """A link waits in ``preparing``: look again soon."""


class LinkIssuer:
    def __init__(self, links: LinkService, proofs: ProofSource, control: StackControl) -> None:
        self.links = links
        self.proofs = proofs
        self.control = control
        self._call: Callable[..., Awaitable[Any]] = links.store.call

    async def create(
        self,
        *,
        professional_id: str,
        client_id: str | None = None,
        consultation_type: str | None = None,
        expires_in_s: float | None = None,
        max_uses: int | None = None,
        wait_s: float = 0.0,
        room: str | None = None,
        token: str | None = None,
    ) -> tuple[LinkRow, str]:
        """Issue a link: ``ready`` on return when a proof counted within ``wait_s``, else ``preparing``.

        Raises the stack's failure (the caller answers 503) when it cannot become ready unattended.
        """
        self.control.touch()
        failure = self.control.failure()
        if failure is not None:
            raise failure
        await self.control.ensure_started()
        proof = self.proofs.current()
        if proof is None and wait_s > 0:
            proof = await self.proofs.wait_fresh(wait_s)
            if proof is None and (failure := self.control.failure()) is not None:
                raise failure
        row, token = await self._call(
            self.links.create,
            professional_id=professional_id,
            client_id=client_id,
            consultation_type=consultation_type,
            expires_in_s=expires_in_s,
            max_uses=max_uses,
            proven=proof,
            room=room,
            token=token,
        )
        if proof is None:
            self.control.poke()
        return row, token

    async def get(self, link_id: str) -> LinkRow:
        row: LinkRow = await self._call(self.links.get, link_id)
        return row

    async def list(self, professional_id: str | None = None) -> list[LinkRow]:
        rows: list[LinkRow] = await self._call(self.links.store.list_links, professional_id=professional_id)
        return rows

    async def revoke(self, link_id: str) -> LinkRow:
        return await self.links.revoke(link_id)

    async def host_token(self, link_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call(self.links.host_token, link_id)
        return doc

    async def resolve(self, token: str) -> tuple[LinkRow | None, str]:
        found: tuple[LinkRow | None, str] = await self._call(self.links.resolve, token)
        return found

    async def join(self, token: str, display_name: str | None) -> JoinGrant:
        # LiveKit must answer before a use is counted (LinkService.join_live).
        grant = await self.links.join_live(token, display_name)
        self.control.touch()
        return grant

    async def guard_lookup(self, link_id: str) -> tuple[str, float] | None:
        found: tuple[str, float] | None = await self._call(self.links.guard_lookup, link_id)
        return found

    async def guard_use(self, link_id: str) -> tuple[bool, str]:
        used: tuple[bool, str] = await self._call(self.links.guard_use, link_id)
        if used[0]:
            self.control.touch()
        return used

    async def record_device_check(self, token: str, result: dict[str, Any]) -> bool:
        ok: bool = await self._call(self.links.record_device_check, token, result)
        return ok

    def link(self, row: LinkRow, lang: Lang) -> Link:
        """The Link document as the wire's model (answer it with ``model_dump_json()``: no dict round trip)."""
        return self.links.to_schema(row, lang=lang)

    def document(self, row: LinkRow, lang: Lang) -> dict[str, Any]:
        """The Link document (CONTRACT.md) in ``lang``."""
        return self.links.to_json(row, lang=lang)

    def url_for(self, row: LinkRow) -> str | None:
        return self.links.url_for(row) if row.verified_at else None
