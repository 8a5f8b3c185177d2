"""The secrets a deployment of several ``linkpronto serve`` instances shares, kept in the store.

One instance alone keeps its secrets in ``data_dir/secrets.json`` (:mod:`linkpronto.keys`). Behind a
load balancer every instance must be interchangeable: the public probe must prove *this
deployment* whichever instance answers, any instance must read the link tokens another one
encrypted, and the admin token must open every instance's admin API. So ``serve`` takes them from
the ``linkpronto_secrets`` table: the first instance to start stores them (a race is settled by the
primary key: the loser reads what the winner wrote), the others read them.

When the database has no secrets yet and this machine has a ``secrets.json`` from ``linkpronto up``,
its probe secret and link key are the ones stored, so links issued before the move keep their URLs.
``server.admin_token`` (env ``LINKPRONTO_SERVER_ADMIN_TOKEN``), when set, replaces the stored admin
token for this instance. The admin token is also written to ``data_dir/admin-token`` (owner-only)
so the CLI on the same machine works.

``server.secrets_key`` (env ``LINKPRONTO_SERVER_SECRETS_KEY``, the same on every instance) seals
the stored secrets (Fernet, key derived with SHA-256): the database alone then never reveals a link
token. Without it the secrets are stored as they are, and the database holds the key that decrypts
stored link tokens — protect database access and backups accordingly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from linkpronto import keys
from linkpronto.config import Settings
from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.links.store import LinkStore
from linkpronto.platform import write_private

log = logging.getLogger(__name__)

NAMES = ("deployment_id", "instance_secret", "link_key", "admin_token")
SEALED = "sealed:"


def _sealer(key: str) -> Fernet | None:
    if not key:
        return None
    derived = hashlib.sha256(b"linkpronto-deployment-secrets\0" + key.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def _seal(values: dict[str, str], sealer: Fernet | None) -> dict[str, str]:
    if sealer is None:
        return values
    return {k: SEALED + sealer.encrypt(v.encode("utf-8")).decode("ascii") for k, v in values.items()}


def _unseal(values: dict[str, str], sealer: Fernet | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in values.items():
        if not value.startswith(SEALED):
            if sealer is not None:
                log.warning("deployment secret %s is stored unsealed (it was stored without server.secrets_key)", name)
            out[name] = value
            continue
        if sealer is None:
            raise ConfigInvalid(
                Text(
                    "Os segredos da implantação no banco estão selados e server.secrets_key não foi informado.",
                    "The deployment's secrets in the database are sealed and server.secrets_key is not set.",
                ),
                fix=Text(
                    "Defina LINKPRONTO_SERVER_SECRETS_KEY com o mesmo valor das outras instâncias.",
                    "Set LINKPRONTO_SERVER_SECRETS_KEY to the same value as the other instances.",
                ),
                keys=["server.secrets_key"],
            )
        try:
            out[name] = sealer.decrypt(value[len(SEALED) :].encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise ConfigInvalid(
                Text(
                    "server.secrets_key não abre os segredos da implantação guardados no banco.",
                    "server.secrets_key does not open the deployment's secrets stored in the database.",
                ),
                fix=Text(
                    "Use o mesmo LINKPRONTO_SERVER_SECRETS_KEY das outras instâncias desta implantação.",
                    "Use the same LINKPRONTO_SERVER_SECRETS_KEY as the other instances of this deployment.",
                ),
                keys=["server.secrets_key"],
            ) from exc
    return out


def _proposal(data_dir: Path) -> dict[str, str]:
    proposed = {
        "deployment_id": "dep_" + secrets.token_hex(8),
        "instance_secret": secrets.token_hex(32),
        "link_key": Fernet.generate_key().decode("ascii"),
        "admin_token": keys.new_token(),
    }
    local = data_dir / keys.SECRETS_FILE
    if local.is_file():
        try:
            doc = json.loads(local.read_text("utf-8"))
            proposed["instance_secret"] = str(doc["instance_secret"])
            proposed["link_key"] = str(doc["link_key"])
        except (OSError, ValueError, KeyError):
            pass  # a broken local file is not the deployment's problem: fresh secrets are proposed
    return proposed


def shared_secrets(store: LinkStore, settings: Settings) -> keys.InstanceSecrets:
    """The deployment's secrets from the store (created there by the first instance)."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    sealer = _sealer(settings.server.secrets_key.get_secret_value())
    proposal = _seal(_proposal(data_dir), sealer)
    stored = _unseal(store.guarded(store.secrets_get_or_create, proposal, datetime.now(UTC)), sealer)
    try:
        instance_secret = bytes.fromhex(stored["instance_secret"])
        link_key = stored["link_key"].encode("ascii")
        Fernet(link_key)
        deployment_id = stored["deployment_id"]
        admin_token = stored["admin_token"]
    except (KeyError, ValueError) as exc:
        raise ConfigInvalid(
            Text(
                "Os segredos da implantação no banco de dados estão incompletos ou corrompidos.",
                "The deployment's secrets in the database are incomplete or corrupt.",
            ),
            fix=Text(
                "Restaure a tabela linkpronto_secrets de um backup. Apagá-la invalida os links já emitidos.",
                "Restore the linkpronto_secrets table from a backup. Deleting it invalidates links already issued.",
            ),
        ) from exc
    override = settings.server.admin_token.get_secret_value()
    if override:
        admin_token = override
    write_private(data_dir / keys.ADMIN_TOKEN_FILE, admin_token.encode("ascii"))
    lk = settings.livekit
    return keys.InstanceSecrets(
        admin_token=admin_token,
        instance_id=deployment_id,
        instance_secret=instance_secret,
        link_key=link_key,
        livekit_api_key=lk.api_key,
        livekit_api_secret=lk.api_secret.get_secret_value(),
    )
