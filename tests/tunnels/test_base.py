"""The tunnel base: one place that reports disconnections, reconnections and URL changes, and a tunnel
is a Part whose listeners get its new status (the payload), with the provider's facts."""

from __future__ import annotations

from linkpronto.components import PartStatus
from linkpronto.errors import TunnelAuth, TunnelUnreachable
from linkpronto.i18n import Text
from linkpronto.schema import PartState
from linkpronto.tunnels.base import TunnelEvent, TunnelEventKind, TunnelProvider


class FakeTunnel(TunnelProvider):
    """A provider whose open() answers what the test says (no process, no socket)."""

    name = "fake"
    client_ip_header = "X-Forwarded-For"

    def __init__(self, url: str = "https://a.example", error: Exception | None = None) -> None:
        self.events: list[TunnelEvent] = []
        super().__init__(7801, self.events.append)
        self.url = url
        self.error = error

    async def _open(self) -> str:
        if self.error is not None:
            raise self.error
        return self.url

    async def _close(self) -> None:
        return None


async def test_listeners_get_the_new_status_with_url_and_facts() -> None:
    tunnel = FakeTunnel()
    seen: list[PartStatus] = []
    tunnel.subscribe(seen.append)
    await tunnel.start()
    assert [s.state for s in seen] == [PartState.STARTING, PartState.READY]
    ready = seen[-1]
    assert ready.url == "https://a.example"
    assert ready.facts.https and ready.facts.client_ip_header == "X-Forwarded-For"
    assert ready.to_schema("en").facts == {
        "https": True, "client_ip_header": "X-Forwarded-For", "binds_lan": False, "forwards_media": False,
    }
    await tunnel.stop()
    assert seen[-1].state is PartState.STOPPED


async def test_disconnect_reconnect_and_url_change_are_reported_once_each() -> None:
    tunnel = FakeTunnel()
    await tunnel.open()
    seen: list[PartStatus] = []
    tunnel.subscribe(seen.append)
    tunnel._disconnected(Text("sem conexão", "no connection"))
    tunnel._disconnected("again")  # already down: not reported twice
    assert [e.kind for e in tunnel.events] == [TunnelEventKind.DISCONNECTED]
    assert tunnel.status().state is PartState.UNHEALTHY
    assert tunnel.status().detail.get("pt-BR") == "fake: sem conexão"
    tunnel._reconnected("https://b.example")
    kinds = [e.kind for e in tunnel.events]
    assert kinds == [TunnelEventKind.DISCONNECTED, TunnelEventKind.RECONNECTED, TunnelEventKind.URL_CHANGED]
    changed = tunnel.events[-1]
    assert (changed.old_url, changed.url) == ("https://a.example", "https://b.example")
    assert tunnel.public_url == "https://b.example" and seen[-1].url == "https://b.example"
    assert tunnel.status().restarts == 1
    tunnel._reconnected("https://b.example")  # up and unchanged: nothing to say
    assert len(tunnel.events) == 3


async def test_unreachable_is_unhealthy_and_a_refused_token_is_failed() -> None:
    unreachable = FakeTunnel(error=TunnelUnreachable())
    try:
        await unreachable.open()
    except TunnelUnreachable:
        pass
    assert unreachable.status().state is PartState.UNHEALTHY  # the stack retries it
    refused = FakeTunnel(error=TunnelAuth())
    try:
        await refused.open()
    except TunnelAuth:
        pass
    st = refused.status()
    assert st.state is PartState.FAILED and isinstance(st.error, TunnelAuth)
    refused._disconnected("after failing")  # a failed tunnel does not report disconnections
    assert refused.events == []
