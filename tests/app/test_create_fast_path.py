"""Issue 16's benchmark work: "Gerar link" does not render a QR code on its request path.

The drop-in takes a token made ahead with the QR of its URL ready (``PreparedTokens``), refilled after the
answer went out. What must hold: the answer's ``qrCode`` is always the QR of the answer's own
``consultationUrl`` (never of another token or an old public URL), a prepared token is handed out once,
and a new public URL throws the pool away. Fast tier: listeners and the LiveKit double in this process."""

from __future__ import annotations

from pathlib import Path

from helpers.inproc import InProcessDouble
from helpers.lp import run_lp, settings_for
from linkpronto.links.service import PreparedTokens, qr_data_uri

T1 = "https://a.example/consultations/client/{token}"
T2 = "https://b.example/consultations/client/{token}"


def test_prepared_tokens_are_bound_to_their_url_and_handed_out_once() -> None:
    pool = PreparedTokens(size=2)
    token, qr = pool.take(T1)
    assert qr is None and len(token) == 39  # nothing prepared yet: a fresh token, the caller renders
    pool.fill(T1)
    seen = set()
    for _ in range(2):
        token, qr = pool.take(T1)
        assert qr == qr_data_uri(PreparedTokens.url(T1, token))
        seen.add(token)
    assert len(seen) == 2
    assert pool.take(T1)[1] is None  # used up, never handed out twice
    pool.fill(T1)
    assert pool.take(T2)[1] is None  # prepared for another public URL: not used
    pool.fill(T2)  # a new URL throws the old pool away
    token, qr = pool.take(T2)
    assert qr == qr_data_uri(PreparedTokens.url(T2, token))
    assert pool.take(None)[1] is None


async def test_drop_in_answers_the_qr_of_its_own_url_from_the_prepared_pool(
    tmp_path: Path, livekit_inproc: InProcessDouble,
) -> None:
    settings = settings_for(tmp_path / "d", livekit_url=livekit_inproc.url)
    async with run_lp(settings) as lp:
        await lp.wait_state("ready", timeout=30)
        links = lp.stack.issuer.links
        tokens = set()
        for n in range(4):
            res = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"})
            assert res.status_code == 200, res.text
            body = res.json()
            assert body["qrCode"] == qr_data_uri(body["consultationUrl"])
            assert body["consultationUrl"].endswith("/" + body["token"])
            tokens.add(body["token"])
            if n == 0:  # the first answer refilled the pool for the current URL
                assert links.prepared._template == links.url_template() and links.prepared._ready
        assert len(tokens) == 4
        # The public URL changes under a prepared pool: the answer still encodes its own URL.
        links.public_base = lambda: "https://moved.example"
        res = await lp.admin.post("/api/generate-consultation-token", json={"professionalId": "dra-ana"})
        body = res.json()
        assert res.status_code == 200 and body["consultationUrl"].startswith("https://moved.example/")
        assert body["qrCode"] == qr_data_uri(body["consultationUrl"])
