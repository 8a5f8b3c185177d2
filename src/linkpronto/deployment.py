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

Note: the database then holds the key that decrypts stored link tokens (unlike a single
instance, whose key is a file beside the database); protect database access and backups accordingly.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet

from linkpronto import keys
from linkpronto.config import Settings
from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text
from linkpronto.links.store import LinkStore
from linkpronto.platform import write_private

NAMES = ("deployment_id", "instance_secret", "link_key", "admin_token")


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
    stored = store.guarded(store.secrets_get_or_create, _proposal(data_dir), datetime.now(UTC))
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
