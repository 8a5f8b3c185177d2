"""The link issuer depends on a proof source only: hand-written fakes for the proof source and the stack
control, a real SQLite store in a temporary folder. No process, no listener."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from linkpronto.errors import InsecureLivekitKeys, LinkprontoError
from linkpronto.issuer import LinkIssuer
from linkpronto.keys import load_or_create
from linkpronto.links.service import LinkService, Proof
from linkpronto.links.store import LinkStore, sqlite_url

PROOF = Proof(datetime(2026, 12, 2, 3, 0, tzinfo=UTC), "https://x.example", "[]")


class FakeProofs:
    def __init__(self, current: Proof | None = None, fresh: Proof | None = None) -> None:
        self._current = current
        self._fresh = fresh
        self.waits: list[float] = []

    def current(self) -> Proof | None:
        return self._current

    async def wait_fresh(self, timeout: float) -> Proof | None:
        self.waits.append(timeout)
        await asyncio.sleep(0)
        return self._fresh


class FakeControl:
    def __init__(self, failure: LinkprontoError | None = None) -> None:
        self._failure = failure
        self.started = self.touched = self.poked = 0

    def failure(self) -> LinkprontoError | None:
        return self._failure

    async def ensure_started(self) -> None:
        self.started += 1

    def touch(self) -> None:
        self.touched += 1

    def poke(self) -> None:
        self.poked += 1


@pytest.fixture
async def links(tmp_path: Path) -> AsyncIterator[LinkService]:
    store = LinkStore(sqlite_url(tmp_path))
    service = LinkService(
        store, load_or_create(tmp_path), link_path="/c/{token}", default_ttl_s=3600, default_max_uses=0,
        join_token_ttl_s=900, public_base=lambda: "https://x.example", credentials=lambda: None,
    )
    yield service
    store.close()


async def test_a_proof_that_counts_issues_a_ready_link_without_waiting(links: LinkService) -> None:
    proofs, control = FakeProofs(current=PROOF), FakeControl()
    row, token = await LinkIssuer(links, proofs, control).create(professional_id="dra-ana", wait_s=20)
    doc = links.to_json(row, lang="en")
    assert doc["status"] == "ready" and doc["url"] == f"https://x.example/c/{token}"
    assert proofs.waits == [] and control.started == 1 and control.touched == 1


async def test_a_stale_proof_waits_for_a_fresh_one(links: LinkService) -> None:
    proofs = FakeProofs(current=None, fresh=PROOF)
    row, _ = await LinkIssuer(links, proofs, FakeControl()).create(professional_id="dra-ana", wait_s=7)
    assert proofs.waits == [7] and links.to_json(row)["status"] == "ready"


async def test_no_proof_in_time_is_preparing_and_pokes_the_runner(links: LinkService) -> None:
    proofs, control = FakeProofs(), FakeControl()
    row, _ = await LinkIssuer(links, proofs, control).create(professional_id="dra-ana", wait_s=0.1)
    doc = links.to_json(row)
    assert doc["status"] == "preparing" and doc["url"] is None and control.poked == 1
    # wait_s=0: no wait at all.
    await LinkIssuer(links, proofs, control).create(professional_id="dra-ana", wait_s=0)
    assert proofs.waits == [0.1]


async def test_a_failed_stack_refuses_before_anything_is_stored(links: LinkService) -> None:
    issuer = LinkIssuer(links, FakeProofs(current=PROOF), FakeControl(failure=InsecureLivekitKeys()))
    with pytest.raises(InsecureLivekitKeys):
        await issuer.create(professional_id="dra-ana")
    assert await issuer.list() == []
