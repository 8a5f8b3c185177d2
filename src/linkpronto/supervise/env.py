"""The environment a supervised child starts with: the user's own, minus linkpronto's secrets.

Every child (LiveKit, the tunnel's agent, the user's app) inherits the orchestrator's environment
*without* the variables that hold linkpronto's credentials — the LiveKit secret, tunnel tokens,
database URLs, anything under ``LINKPRONTO_``. What a child really needs is then added back by its
own spec (:attr:`ProcessSpec.env`): the tunnel's token only to the tunnel's process, the app's
documented variables (:mod:`linkpronto.app_env`) only to the app.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping


@functools.cache
def secret_names() -> frozenset[str]:
    """Never inherited: the credentials each provider module names (LiveKit, ngrok, cloudflared).

    Asked of the provider modules when the first child starts (they import the supervisor, so not at
    import time)."""
    from linkpronto.livekit import remote
    from linkpronto.tunnels import cloudflared, ngrok

    return frozenset((*remote.CREDENTIAL_ENV, *ngrok.CREDENTIAL_ENV, *cloudflared.CREDENTIAL_ENV))


#: linkpronto's own configuration (``LINKPRONTO_<SECTION>_<KEY>``: the admin token, database URL,
#: Redis URL with its password…) is linkpronto's alone.
SECRET_PREFIXES = ("LINKPRONTO_",)


def is_secret(name: str) -> bool:
    upper = name.upper()  # Windows names are case-insensitive
    return upper in secret_names() or upper.startswith(SECRET_PREFIXES)


def child_environment(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (the orchestrator's environment) without secrets, then ``extra`` on top."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not is_secret(k)}
    if extra:
        env.update(extra)
    return env
