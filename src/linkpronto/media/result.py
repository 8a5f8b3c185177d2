"""What the media rung measured, and what it means (pure: no livekit.rtc, no I/O).

The probe (media/probe.py) reports the facts: frames decoded or not, time to the first one, and the
ICE candidate pair actually used. :func:`judge` turns them into a reach with the path named:

- no decoded frame → ``none`` (``MEDIA_UNREACHABLE``: no link becomes ready);
- LiveKit Cloud, or a ``relay`` candidate (TURN) → ``anywhere``;
- with ``ssh_forward_media``: ``anywhere`` only when the pair's remote address is the advertised,
  forwarded one (the ssh server's) over TCP and not one of this machine's own addresses (a
  ``livekit.node_ip`` set to the laptop itself proves nothing) — a loopback or LAN shortcut proves
  only ``same-network``. LiveKit runs ICE lite then (livekit/local.py), so the probe's pair is the
  one it opened towards the advertised address: the path a phone outside takes;
- a public remote address → ``anywhere``; a private/loopback one → ``same-network``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from linkpronto.i18n import Text

Reach = Literal["same-network", "anywhere", "none", "unknown"]


@dataclass(frozen=True, slots=True)
class Candidate:
    type: str  # host | srflx | prflx | relay
    protocol: str  # udp | tcp
    address: str  # ip:port of the remote (LiveKit's) side of the pair

    @property
    def ip(self) -> str:
        host, _, _port = self.address.rpartition(":")
        return (host or self.address).strip("[]")

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "protocol": self.protocol, "address": self.address}

    @classmethod
    def from_json(cls, doc: Any) -> Candidate | None:
        if not isinstance(doc, dict):
            return None
        return cls(str(doc.get("type", "")), str(doc.get("protocol", "")), str(doc.get("address", "")))


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """What the probe child prints (JSON), before any judgement."""

    frames: int  # frames the subscriber decoded
    first_frame_ms: float | None  # publisher's connect → first decoded non-black frame at the subscriber
    candidate: Candidate | None  # the subscriber's selected pair (LiveKit → us: the media path)
    publisher_candidate: Candidate | None
    error: str = ""  # what stopped it (signal connection refused, timeout...)
    black: bool = False  # frames arrived but were black

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ProbeReport:
        ffm = doc.get("first_frame_ms")
        return cls(
            frames=int(doc.get("frames") or 0),
            first_frame_ms=float(ffm) if isinstance(ffm, (int, float)) else None,
            candidate=Candidate.from_json(doc.get("candidate")),
            publisher_candidate=Candidate.from_json(doc.get("publisher_candidate")),
            error=str(doc.get("error") or ""),
            black=bool(doc.get("black")),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "first_frame_ms": self.first_frame_ms,
            "candidate": self.candidate.to_json() if self.candidate else None,
            "publisher_candidate": self.publisher_candidate.to_json() if self.publisher_candidate else None,
            "error": self.error,
            "black": self.black,
        }


@dataclass(frozen=True, slots=True)
class MediaResult:
    """The contract's Status ``media`` object, plus what the keeper needs."""

    reach: Reach
    measured: bool
    detail: Text
    fix: Text | None = None
    candidate: Candidate | None = None
    first_frame_ms: float | None = None
    duration_ms: float = 0.0
    public_url: str | None = None  # the URL it was measured through
    finished_at: float = 0.0  # time.monotonic()

    @property
    def ok(self) -> bool:
        """Frames were decoded (the ``media`` check passes)."""
        return self.reach in ("same-network", "anywhere")


@dataclass(frozen=True, slots=True)
class PathFacts:
    """What the configuration says the outside path is (to tell a proof from a shortcut)."""

    livekit_mode: str  # local | external | cloud
    forwards_media: bool  # ssh with ssh_forward_media
    advertised_ip: str  # rtc.node_ip LiveKit hands clients ("" when unknown)
    turn_url: str = ""
    #: This machine's own interface addresses: a pair to one of them never went through a server.
    own_addresses: frozenset[str] = frozenset()


FIX_UNREACHABLE = Text(
    "Nenhum vídeo passou nem neste computador: o LiveKit anuncia um endereço de mídia que ninguém "
    "alcança. Confira livekit.node_ip (deixe vazio para o endereço desta rede) e se um firewall bloqueia "
    "as portas do LiveKit (7881/TCP, 50000-60000/UDP); depois rode linkpronto status.",
    "No video got through, not even on this computer: LiveKit advertises a media address nobody reaches. "
    "Check livekit.node_ip (leave it empty for this network's address) and whether a firewall blocks "
    "LiveKit's ports (7881/TCP, 50000-60000/UDP); then run linkpronto status.",
)
FIX_SAME_NETWORK = Text(
    "Celulares fora desta rede não terão vídeo. Use LiveKit Cloud (--livekit cloud), um VPS com "
    "--tunnel ssh e ssh_forward_media = true, ou configure TURN (livekit.turn_url).",
    "Phones outside this network will get no video. Use LiveKit Cloud (--livekit cloud), a VPS "
    "with --tunnel ssh and ssh_forward_media = true, or configure TURN (livekit.turn_url).",
)
FIX_FORWARD = Text(
    "O vídeo não passou pelo endereço encaminhado do servidor ssh. Confira GatewayPorts no sshd do VPS, "
    "livekit.node_ip = endereço público do VPS e a porta ICE/TCP (livekit.tcp_port) livre no VPS.",
    "Video did not get through the ssh server's forwarded address. Check GatewayPorts in the VPS's sshd, "
    "livekit.node_ip = the VPS's public address, and that the ICE/TCP port (livekit.tcp_port) is free there.",
)


def _classify(ip: str) -> str:
    from linkpronto.verify import classify_address

    return classify_address(ip)


def _pair_words(c: Candidate) -> tuple[str, str]:
    kind_pt = {"host": "direto", "srflx": "via NAT", "prflx": "via NAT", "relay": "via TURN"}.get(c.type, c.type)
    kind_en = {"host": "direct", "srflx": "through NAT", "prflx": "through NAT", "relay": "through TURN"}.get(
        c.type, c.type)
    proto = c.protocol.upper() or "?"
    return f"{proto} {kind_pt} para {c.address}", f"{proto} {kind_en} to {c.address}"


def judge(report: ProbeReport, facts: PathFacts, *, duration_ms: float, public_url: str | None,
          finished_at: float) -> MediaResult:
    """The reach the measurement proves, with the path it used."""
    common: dict[str, Any] = {"measured": True, "duration_ms": duration_ms, "public_url": public_url,
                              "finished_at": finished_at, "candidate": report.candidate or report.publisher_candidate}
    c = common["candidate"]
    if report.frames <= 0 or report.black:
        why = report.error or ("quadros pretos" if report.black else "nenhum quadro decodificado")
        why_en = report.error or ("black frames" if report.black else "no frame decoded")
        fix = FIX_FORWARD if facts.forwards_media else FIX_UNREACHABLE
        return MediaResult("none", detail=Text(
            f"MEDIA_UNREACHABLE: nenhum vídeo passou pelo endereço público ({why})",
            f"MEDIA_UNREACHABLE: no video got through the public URL ({why_en})"), fix=fix, **common)
    ffm = report.first_frame_ms
    common["first_frame_ms"] = ffm
    took = f" em {ffm:.0f} ms" if ffm is not None else ""
    took_en = f" in {ffm:.0f} ms" if ffm is not None else ""
    path_pt, path_en = _pair_words(c) if c is not None else ("caminho desconhecido", "unknown path")

    def anywhere(through_pt: str, through_en: str) -> MediaResult:
        return MediaResult("anywhere", detail=Text(
            f"vídeo decodificado{took} ({path_pt}), {through_pt}: aparelhos em qualquer rede terão vídeo",
            f"video decoded{took_en} ({path_en}), {through_en}: devices on any network get video"), **common)

    if facts.livekit_mode == "cloud":
        return anywhere("pelo LiveKit Cloud", "through LiveKit Cloud")
    if c is not None and c.type == "relay":
        return anywhere("pelo TURN", "through TURN")
    if facts.forwards_media:
        if (c is not None and c.protocol == "tcp" and facts.advertised_ip and c.ip == facts.advertised_ip
                and facts.advertised_ip not in facts.own_addresses):
            return anywhere(f"pelo endereço encaminhado do servidor ssh {facts.advertised_ip}",
                            f"through the ssh server's forwarded address {facts.advertised_ip}")
        return MediaResult("same-network", detail=Text(
            f"vídeo decodificado{took} ({path_pt}), mas não pelo endereço encaminhado do servidor ssh: "
            "só está provado nesta rede",
            f"video decoded{took_en} ({path_en}), but not through the ssh server's forwarded address: "
            "proven on this network only"), fix=FIX_FORWARD, **common)
    if c is not None and _classify(c.ip) == "public":
        return anywhere(f"pelo endereço público {c.ip}", f"through the public address {c.ip}")
    return MediaResult("same-network", detail=Text(
        f"vídeo decodificado{took} ({path_pt}): só aparelhos nesta rede terão vídeo",
        f"video decoded{took_en} ({path_en}): only devices on this network get video"),
        fix=FIX_SAME_NETWORK, **common)
