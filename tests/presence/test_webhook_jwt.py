"""linkpronto's webhook check against an independent JWT implementation (fast: no process).

Signing with one implementation and verifying with another is what shows the check follows LiveKit's
format rather than agreeing with itself; every refusal is the specific :class:`WebhookRejected`."""

from __future__ import annotations

import json
import time

import pytest

from linkpronto.errors import WebhookRejected
from linkpronto.events.webhook import verify
from presence import _jwt_manual as manual

KEY, SECRET = "APIwebhooktest", "w" * 40
BODY = json.dumps({
    "event": "participant_joined", "id": "EV_1", "createdAt": str(int(time.time())),
    "room": {"name": "consulta-1", "sid": "RM_1"},
    "participant": {"identity": "p-0001", "name": "Maria", "attributes": {"linkpronto.role": "patient"}},
}).encode()


def test_a_hand_signed_webhook_is_accepted() -> None:
    token = manual.webhook_token(BODY, KEY, SECRET)
    assert manual.check(token, BODY, KEY, SECRET) == "ok"
    ev = verify(BODY, token, KEY, SECRET)
    assert ev.room == "consulta-1" and ev.identity == "p-0001"


@pytest.mark.parametrize(
    ("case", "why"),
    [("altered-body", "body-hash"), ("wrong-secret", "bad-signature"), ("expired", "expired"),
     ("wrong-issuer", "wrong-issuer"), ("no-exp", "no-exp")],
)
def test_every_bad_webhook_is_rejected_specifically(case: str, why: str) -> None:
    body = BODY
    if case == "altered-body":
        token = manual.webhook_token(BODY, KEY, SECRET)
        body = BODY.replace(b"p-0001", b"p-0002")
    elif case == "wrong-secret":
        token = manual.webhook_token(BODY, KEY, "another-secret-" + "y" * 30)
    elif case == "expired":
        token = manual.webhook_token(BODY, KEY, SECRET, exp_in_s=-120)  # 2 minutes ago: past the leeway
    elif case == "wrong-issuer":
        token = manual.webhook_token(BODY, "APIsomeoneelse", SECRET)
    else:
        token = manual.sign({"iss": KEY, "sha256": manual.body_hash(BODY)}, SECRET)
    assert manual.check(token, body, KEY, SECRET) == why  # the independent verdict
    with pytest.raises(WebhookRejected) as info:
        verify(body, token, KEY, SECRET)
    assert info.value.code == "WEBHOOK_REJECTED" and info.value.reason


def test_a_token_just_inside_the_leeway_is_still_accepted() -> None:
    token = manual.webhook_token(BODY, KEY, SECRET, exp_in_s=-3)  # 3 s late: LiveKit's clock skew
    assert manual.check(token, BODY, KEY, SECRET, now=time.time() - 10) == "ok"
    assert verify(BODY, token, KEY, SECRET).room == "consulta-1"
