"""Issue 19 finding 17: callbacks to the app are signed with a timestamp (Stripe's ``t=…,v1=…``): a
captured request replayed outside the tolerance window, or with its timestamp changed, is refused."""

from __future__ import annotations

from linkpronto.events.hub import TOLERANCE_S, sign
from linkpronto.events.hub import verify_signature as verify

BODY = b'{"id":"evt_1","type":"link.presence","presence":"waiting"}'
NOW = 1_800_000_000.0


def test_a_fresh_signature_verifies() -> None:
    assert verify("s3cret", sign("s3cret", BODY, now=NOW), BODY, now=NOW + 2)


def test_a_replay_after_the_window_is_refused() -> None:
    header = sign("s3cret", BODY, now=NOW)
    assert verify("s3cret", header, BODY, now=NOW + TOLERANCE_S)
    assert not verify("s3cret", header, BODY, now=NOW + TOLERANCE_S + 1)


def test_a_moved_timestamp_another_body_or_key_is_refused() -> None:
    header = sign("s3cret", BODY, now=NOW)
    mac = header.split("v1=", 1)[1]
    assert not verify("s3cret", f"t={int(NOW) + 600},v1={mac}", BODY, now=NOW + 600)
    assert not verify("s3cret", header, BODY.replace(b"waiting", b"in_call"), now=NOW)
    assert not verify("other", header, BODY, now=NOW)
    assert not verify("s3cret", "sha256=" + mac, BODY, now=NOW)  # no timestamp, no acceptance
