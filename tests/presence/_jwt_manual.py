"""An independent HS256 JWT + body-hash implementation (stdlib only: hmac, hashlib, base64, json).

Written from RFC 7519/7515 and LiveKit's webhook docs, not from PyJWT or livekit-api, so a test can sign
and check LiveKit webhooks without trusting the library under test to agree with itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def body_hash(body: bytes) -> str:
    """LiveKit's ``sha256`` claim: standard base64 (with padding) of SHA-256 of the exact body."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def sign(claims: dict[str, Any], secret: str) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(mac)}"


def webhook_token(body: bytes, api_key: str, secret: str, *, exp_in_s: float = 300, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return sign({"iss": api_key, "nbf": int(now) - 1, "exp": int(now + exp_in_s), "sha256": body_hash(body)}, secret)


def check(token: str, body: bytes, api_key: str, secret: str, *, now: float | None = None) -> str:
    """``"ok"`` or why not: ``bad-signature``, ``wrong-issuer``, ``expired``, ``no-exp``, ``body-hash``."""
    now = time.time() if now is None else now
    header, payload, mac = token.split(".")
    want = hmac.new(secret.encode(), f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    if json.loads(_unb64url(header)).get("alg") != "HS256" or not hmac.compare_digest(want, _unb64url(mac)):
        return "bad-signature"
    claims = json.loads(_unb64url(payload))
    if claims.get("iss") != api_key:
        return "wrong-issuer"
    if "exp" not in claims:
        return "no-exp"
    if claims["exp"] < now:
        return "expired"
    if claims.get("sha256") != body_hash(body):
        return "body-hash"
    return "ok"
