"""The instance's own secrets, kept in ``data_dir`` with owner-only permissions.

- ``admin-token``: the bearer token of the admin API (handed to a supervised app).
- ``secrets.json``: the instance secret (HMAC of the public probe), the key that encrypts issued link
  tokens in the store (so the database alone never reveals a token), and — for LiveKit ``local``
  mode — the generated LiveKit key pair (never ``devkey``/``secret``).

All are created once, on first start, from :mod:`secrets`; none is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.platform import write_private

ADMIN_TOKEN_FILE = "admin-token"
SECRETS_FILE = "secrets.json"
TOKEN_BYTES = 24  # 192 bits: link tokens and the admin token


def new_token() -> str:
    """A capability token with 192 bits of entropy in lowercase base32 (``a-z``, ``2-7``; 39 characters).

    WhatsApp-safe (issue 16): no ``_`` (``_…_`` is italics there), no ``-``/``~``/``*``, and no capitals,
    so an app that lowercases it (``consulta-${token.toLowerCase()}``) keeps the same token. Older
    base64url tokens keep resolving: lookup is by SHA-256 of the token as given.
    """
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").rstrip("=").lower()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class InstanceSecrets:
    admin_token: str = field(repr=False)
    instance_id: str
    instance_secret: bytes = field(repr=False)
    link_key: bytes = field(repr=False)
    livekit_api_key: str
    livekit_api_secret: str = field(repr=False)

    def probe_mac(self, nonce: str) -> str:
        return hmac.new(self.instance_secret, nonce.encode("utf-8"), hashlib.sha256).hexdigest()

    def fernet(self) -> Fernet:
        return Fernet(self.link_key)

    def encrypt_token(self, token: str) -> bytes:
        return self.fernet().encrypt(token.encode("utf-8"))

    def decrypt_token(self, blob: bytes) -> str | None:
        try:
            return self.fernet().decrypt(blob).decode("utf-8")
        except InvalidToken:
            return None


def load_or_create(data_dir: Path) -> InstanceSecrets:
    data_dir.mkdir(parents=True, exist_ok=True)
    admin_path = data_dir / ADMIN_TOKEN_FILE
    secrets_path = data_dir / SECRETS_FILE
    if not admin_path.exists():
        write_private(admin_path, new_token().encode("ascii"))
    if not secrets_path.exists():
        doc = {
            "instance_id": secrets.token_hex(8),
            "instance_secret": secrets.token_hex(32),
            "link_key": Fernet.generate_key().decode("ascii"),
            "livekit_api_key": "LP" + secrets.token_hex(6).upper(),
            "livekit_api_secret": secrets.token_urlsafe(36),
        }
        write_private(secrets_path, json.dumps(doc, indent=2).encode("utf-8"))
    try:
        doc = json.loads(secrets_path.read_text("utf-8"))
        return InstanceSecrets(
            admin_token=admin_path.read_text("ascii").strip(),
            instance_id=doc["instance_id"],
            instance_secret=bytes.fromhex(doc["instance_secret"]),
            link_key=doc["link_key"].encode("ascii"),
            livekit_api_key=doc["livekit_api_key"],
            livekit_api_secret=doc["livekit_api_secret"],
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigInvalid(
            Text(
                f"O arquivo de segredos {secrets_path} está corrompido ({type(exc).__name__}).",
                f"The secrets file {secrets_path} is corrupt ({type(exc).__name__}).",
            ),
            fix=Text(
                "Restaure-o de um backup. Apagá-lo invalida os links já emitidos.",
                "Restore it from a backup. Deleting it invalidates links already issued.",
            ),
        ) from exc
