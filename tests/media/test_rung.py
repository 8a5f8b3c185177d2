"""The media rung without WebRTC: what a measurement means (judge), the keeper's cadence, the ladder's
media check (none blocks links with MEDIA_UNREACHABLE, and recovers), the rung never delaying a create
on a ready stack, "not measured" without the extra, and probe rooms never counting."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from linkpronto.errors import check_failed
from linkpronto.i18n import Text
from linkpronto.media import is_probe
from linkpronto.media.result import Candidate, MediaResult, PathFacts, ProbeReport, judge
from linkpronto.media.rung import MediaKeeper, MediaRung, RungConfig
from linkpronto.verify import LadderInput, MediaAssessment, media_check

LAN = PathFacts("local", forwards_media=False, advertised_ip="192.168.1.20")
VPS = PathFacts("local", forwards_media=True, advertised_ip="198.18.50.2")


def report(frames: int = 3, ctype: str = "host", proto: str = "udp", addr: str = "192.168.1.20:50000") -> ProbeReport:
    return ProbeReport(frames=frames, first_frame_ms=120.0 if frames else None,
                       candidate=Candidate(ctype, proto, addr), publisher_candidate=None)


def j(rep: ProbeReport, facts: PathFacts) -> MediaResult:
    return judge(rep, facts, duration_ms=900.0, public_url="https://x.example", finished_at=1.0)


# -- what a measurement means ------------------------------------------------------------------------
def test_frames_on_a_private_address_prove_the_same_network_only() -> None:
    r = j(report(), LAN)
    assert (r.reach, r.measured, r.ok) == ("same-network", True, True)
    assert r.candidate == Candidate("host", "udp", "192.168.1.20:50000")
    assert r.first_frame_ms == 120.0
    assert r.fix is not None and "ssh_forward_media" in r.fix.en


def test_no_frame_is_none_with_a_fix() -> None:
    r = j(report(frames=0), LAN)
    assert (r.reach, r.ok) == ("none", False)
    assert r.detail.en.startswith("MEDIA_UNREACHABLE")
    assert r.fix is not None and "node_ip" in r.fix.en


def test_ssh_forward_is_anywhere_only_through_the_forwarded_address() -> None:
    through_vps = j(report(proto="tcp", addr="198.18.50.2:7881"), VPS)
    assert through_vps.reach == "anywhere"
    assert "198.18.50.2" in through_vps.detail.en
    # A loopback or LAN shortcut (UDP straight to this machine) proves nothing about the vps.
    shortcut = j(report(proto="udp", addr="127.0.0.1:50000"), VPS)
    assert shortcut.reach == "same-network"
    lan_tcp = j(report(proto="tcp", addr="192.168.1.20:7881"), VPS)
    assert lan_tcp.reach == "same-network"


def test_a_forwarded_address_that_is_this_machine_proves_nothing() -> None:
    # livekit.node_ip set to the laptop's own address: a TCP pair to it never crossed a server.
    own = PathFacts("local", forwards_media=True, advertised_ip="198.18.50.2",
                    own_addresses=frozenset({"127.0.0.1", "198.18.50.2"}))
    r = j(report(proto="tcp", addr="198.18.50.2:7881"), own)
    assert r.reach == "same-network" and r.fix is not None and "GatewayPorts" in r.fix.en


def test_forwarded_media_runs_livekit_ice_lite_and_nothing_else_does(tmp_path: Path) -> None:
    """With ssh_forward_media LiveKit sends no connectivity checks of its own (ICE lite), so the rung's
    pair is the one it opened towards the forwarded address, never LiveKit reaching this machine's
    host candidates directly (what full ICE did: a UDP prflx pair that proved only the LAN)."""
    from linkpronto.config import defaults
    from linkpronto.livekit.local import render_config

    def rtc(**tunnel: Any) -> dict[str, Any]:
        settings = defaults(server={"data_dir": tmp_path}, tunnel=tunnel)
        return dict(render_config(settings, "APIk", "s" * 40, "198.18.50.2")["rtc"])

    assert rtc(provider="ssh", ssh_target="u@vps", ssh_forward_media=True)["use_ice_lite"] is True
    assert "use_ice_lite" not in rtc(provider="ssh", ssh_target="u@vps")
    assert "use_ice_lite" not in rtc(provider="static", static_url="https://x.example", ssh_forward_media=True)


def test_relay_cloud_and_public_addresses_are_anywhere() -> None:
    assert j(report(ctype="relay", addr="10.0.0.9:3478"), LAN).reach == "anywhere"
    assert j(report(), PathFacts("cloud", False, "")).reach == "anywhere"
    assert j(report(addr="93.184.216.34:50000"), LAN).reach == "anywhere"


# -- the ladder's media check ------------------------------------------------------------------------
def ladder_input(**kw: Any) -> LadderInput:
    base: dict[str, Any] = dict(
        public_url="https://x.example", instance_id="i", probe_mac=lambda n: n, api_key="k", api_secret="s",
        livekit_local_url="http://127.0.0.1:7880", livekit_cloud_url=None, app_url=None, app_health_path="/",
        link_path="/c/{token}", media=MediaAssessment("same-network", Text.same("config says")),
    )
    base.update(kw)
    return LadderInput(**base)


def test_media_none_is_a_required_failure_named_media_unreachable() -> None:
    check, assessment = media_check(ladder_input(media_result=j(report(frames=0), LAN)))
    assert check.required and not check.ok
    assert assessment.reach == "none"
    err = check_failed(check.name, check.detail, check.fix)
    assert err.code == "MEDIA_UNREACHABLE"
    assert err.fix_text is not None and "node_ip" in err.fix_text.en
    assert "MEDIA_UNREACHABLE:" not in err.text.en  # the code is not repeated in the sentence


def test_measured_same_network_passes_with_the_warning_fix() -> None:
    check, assessment = media_check(ladder_input(media_result=j(report(), LAN)))
    assert check.ok and check.required
    assert assessment.reach == "same-network"
    assert check.fix is not None


def test_pending_measurement_blocks_and_fallback_is_informational() -> None:
    pending, _ = media_check(ladder_input(media_pending=True))
    assert pending.required and not pending.ok
    fallback, m = media_check(ladder_input())
    assert not fallback.required and m.why.en == "config says"


# -- not installed -----------------------------------------------------------------------------------
def cfg(url: str) -> RungConfig:
    return RungConfig(url="wss://x.example/_linkpronto/livekit", api_url="http://127.0.0.1:7880", api_key="k",
                      api_secret="s", facts=LAN, fallback_reach="same-network",
                      fallback_why=Text.same("LiveKit advertises 192.168.1.20"))


async def test_without_the_extra_the_rung_says_not_measured_and_the_fix() -> None:
    rung = MediaRung(cfg, available=lambda: False)
    r = await rung.run("https://x.example")
    assert (r.measured, r.reach) == (False, "same-network")
    assert "not measured" in r.detail.en
    assert r.fix is not None and "pip install linkpronto[media]" in r.fix.en
    check, _ = media_check(ladder_input(media_result=r))
    assert not check.required  # the configuration's judgement never blocks a link


# -- the keeper's cadence ----------------------------------------------------------------------------
def result(reach: str, url: str = "u1") -> MediaResult:
    import time

    return MediaResult(reach, True, Text.same(reach), public_url=url, finished_at=time.monotonic())  # type: ignore[arg-type]


async def test_keeper_runs_at_once_on_url_change_and_reports_only_meaningful_changes() -> None:
    url = ["u1"]
    outcomes = ["same-network", "same-network", "none", "same-network"]
    runs: list[str] = []
    changes: list[str] = []

    async def run(u: str) -> MediaResult:
        runs.append(u)
        return result(outcomes[min(len(runs) - 1, len(outcomes) - 1)], u)

    keeper = MediaKeeper(run, interval=3600, key=lambda: url[0], public_url=lambda: url[0],
                         on_change=lambda: changes.append(keeper.latest.reach if keeper.latest else "?"), retry=3600)
    keeper.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.01)
            if runs:
                break
        assert runs == ["u1"] and changes == ["same-network"]
        keeper.poke()
        await asyncio.sleep(0.05)
        assert runs == ["u1"]  # not due: the interval is an hour
        url[0] = "u2"  # a new public URL: at once
        assert keeper.result_for("u2") is None
        keeper.poke()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(runs) == 2:
                break
        assert runs == ["u1", "u2"]
        assert keeper.result_for("u2") is not None
        assert changes == ["same-network", "same-network"]  # pending -> measured for u2
        await keeper.run_once("u2")  # none: a meaningful change
        await keeper.run_once("u2")  # recovered
        assert changes[-2:] == ["none", "same-network"]
    finally:
        await keeper.stop()


# -- the stack: none blocks, recovery, and a create never waits for the rung --------------------------
class FakeRung:
    def __init__(self) -> None:
        self.reach = "same-network"
        self.block = asyncio.Event()
        self.blocking = False
        self.calls = 0
        self.entered = asyncio.Event()

    async def run(self, _self: Any, url: str) -> MediaResult:
        self.calls += 1
        self.entered.set()
        if self.blocking:
            await self.block.wait()
        import time

        detail = "MEDIA_UNREACHABLE: fake none" if self.reach == "none" else f"fake {self.reach}"  # as judge() says
        return MediaResult(self.reach, True, Text.same(detail),  # type: ignore[arg-type]
                           fix=Text.same("fix it") if self.reach != "anywhere" else None,
                           candidate=Candidate("host", "udp", "198.18.1.2:1"), first_frame_ms=10.0,
                           public_url=url, finished_at=time.monotonic())


@pytest.fixture
def fake_rung(monkeypatch: pytest.MonkeyPatch) -> FakeRung:
    fake = FakeRung()

    async def run(self: Any, url: str) -> MediaResult:
        return await fake.run(self, url)

    monkeypatch.setattr(MediaRung, "run", run)
    return fake


async def test_create_on_a_ready_stack_never_waits_for_a_running_rung(
        tmp_path: Path, livekit_inproc: InProcessDouble, fake_rung: FakeRung) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, verify={"media_interval": "60s"})
    async with run_lp(settings) as lp:
        status = await lp.wait_state("ready", timeout=15)
        assert status["media"]["measured"] is True
        assert status["media"]["candidate"] == {"type": "host", "protocol": "udp", "address": "198.18.1.2:1"}
        keeper = lp.stack.media
        assert keeper is not None
        fake_rung.blocking = True
        fake_rung.entered.clear()
        task = asyncio.create_task(keeper.run_once(status["public_url"]))
        await asyncio.wait_for(fake_rung.entered.wait(), 5)
        assert keeper.running
        lp.stack.invalidate()  # a part event: the ladder must run again before this create is answered
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 3})
        assert res.status_code == 201, res.text
        assert keeper.running  # the create answered while the rung was still measuring
        media = next(c for c in res.json()["checks"] if c["name"] == "media")
        assert media["ok"] and media["detail"] == "fake same-network"
        fake_rung.block.set()
        await task


async def test_media_none_means_no_link_ready_then_recovery(
        tmp_path: Path, livekit_inproc: InProcessDouble, fake_rung: FakeRung) -> None:
    fake_rung.reach = "none"
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url, verify={"media_interval": "60s"})
    async with run_lp(settings) as lp:
        for _ in range(100):
            status = (await lp.admin.get("/api/status")).json()
            if any(p["code"] == "MEDIA_UNREACHABLE" for p in status["problems"]):
                break
            await asyncio.sleep(0.1)
        assert status["state"] != "ready", status
        assert status["media"]["reach"] == "none", status
        problem = next(p for p in status["problems"] if p["code"] == "MEDIA_UNREACHABLE")
        assert problem["fix"]
        res = await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana", "wait_s": 1})
        assert res.status_code == 202 and res.json()["status"] == "preparing"
        link_id = res.json()["id"]
        # Media comes back: the keeper's quick retry after a none sees it, the link becomes ready.
        fake_rung.reach = "same-network"
        keeper = lp.stack.media
        assert keeper is not None
        await keeper.run_once(status["public_url"])
        await lp.wait_state("ready", timeout=10)
        link = await lp.wait_link(link_id, "ready", timeout=10) if hasattr(lp, "wait_link") else None
        if link is None:
            for _ in range(50):
                link = (await lp.admin.get(f"/api/consultation-links/{link_id}")).json()
                if link["status"] == "ready":
                    break
                await asyncio.sleep(0.1)
        assert link is not None and link["status"] == "ready"


# -- probe rooms never count -------------------------------------------------------------------------
def test_probe_rooms_and_participants_are_recognised() -> None:
    assert is_probe(room="linkpronto-probe-media-abc")
    assert is_probe(room="linkpronto-probe")  # the ladder's validate probe room
    assert is_probe(identity="lp-probe-sub-1")
    assert not is_probe(room="consulta-123", identity="p-abc")


async def test_probe_webhooks_never_reach_presence(tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    from linkpronto.events.webhook import RoomEvent

    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        hub = lp.stack.events
        applied: list[Any] = []
        from linkpronto.events import outbox

        real = outbox.apply_event

        def spy(*a: Any, **k: Any) -> Any:
            applied.append(a[1])
            return real(*a, **k)

        outbox.apply_event = spy  # type: ignore[assignment]
        try:
            ev = RoomEvent(id="e1", kind="participant_joined", room="linkpronto-probe-media-x", room_sid="RM_1",
                           created_at=1, participant_sid="PA_1", identity="lp-probe-sub-1", role="professional")
            assert await hub.handle(ev) is None
            ev2 = RoomEvent(id="e2", kind="participant_joined", room="consulta-1", room_sid="RM_2",
                            created_at=1, participant_sid="PA_2", identity="lp-probe-pub-1", role="professional")
            assert await hub.handle(ev2) is None
            assert applied == []
        finally:
            outbox.apply_event = real  # type: ignore[assignment]


# -- the patient's media-check token -----------------------------------------------------------------
async def test_media_check_token_is_a_probe_room_for_a_live_link_only_and_never_a_use(
        tmp_path: Path, livekit_inproc: InProcessDouble) -> None:
    import jwt

    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=15)
        link = (await lp.admin.post("/api/consultation-links", json={"professional_id": "dra-ana"})).json()
        token = link["url"].rstrip("/").rsplit("/", 1)[-1]
        res = await lp.public.post("/_linkpronto/api/media-check-token", json={"token": token})
        assert res.status_code == 200, res.text
        doc = res.json()
        claims = jwt.decode(doc["token"], options={"verify_signature": False})
        assert is_probe(room=doc["room"]) and doc["room"] == claims["video"]["room"]
        assert is_probe(identity=claims["sub"])
        assert claims["video"]["canPublish"] is True and claims["video"]["canSubscribe"] is False
        assert claims["video"].get("hidden") is True
        assert claims["exp"] - claims["nbf"] <= 120
        assert doc["room"] != link["room"]
        again = (await lp.admin.get(f"/api/consultation-links/{link['id']}")).json()
        assert again["uses"] == link["uses"]  # never a use of the link
        bad = await lp.public.post("/_linkpronto/api/media-check-token", json={"token": "x" * 30})
        assert bad.status_code == 404
        typed = await lp.public.post("/_linkpronto/api/media-check-token", json={"token": 5})
        assert typed.status_code == 422  # strict types


def test_device_check_media_part_is_strict_and_bounded() -> None:
    from linkpronto.links import inputs

    ok, bad = inputs.parse(inputs.DeviceCheckRequest, json_bytes({
        "token": "t", "result": {"ok": True, "media": {"ok": True, "status": "passed", "packets_sent": 42,
                                                        "rtt_ms": 38, "candidate": {"type": "host", "protocol": "udp",
                                                                                    "address": "198.18.1.2:7882"}}}}))
    assert ok is not None and not bad
    assert ok.result.media is not None and ok.result.media.candidate is not None
    stored = inputs.stored_device_check(ok.result)
    assert stored is not None and stored["media"]["candidate"]["protocol"] == "udp"
    none, bad = inputs.parse(inputs.DeviceCheckRequest, json_bytes({
        "token": "t", "result": {"ok": True, "media": {"ok": True, "status": "passed", "packets_sent": -1}}}))
    assert none is None and any("media" in b for b in bad)
    extra, _ = inputs.parse(inputs.DeviceCheckRequest, json_bytes({
        "token": "t", "result": {"ok": True, "media": {"ok": True, "status": "passed", "evil": "x" * 100}}}))
    assert extra is not None and "evil" not in (inputs.stored_device_check(extra.result) or {})["media"]


def json_bytes(doc: Any) -> bytes:
    import json

    return json.dumps(doc).encode()
