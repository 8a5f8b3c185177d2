"""Where rate-limit counters live: ``memory://`` for one instance, ``redis://`` for several.

The ``limits`` library's storages; this module only turns a bad or unusable URL into a
``CONFIG_INVALID`` with a fix instead of a traceback, and checks a Redis storage answers at start-up
(so a wrong address is reported before the first patient is refused). With Redis, every instance
behind one address counts in the same keys, so a limit is exact across instances.
"""

from __future__ import annotations

from typing import Any

from linkpronto.errors import ConfigInvalid
from linkpronto.i18n import Text

SCHEMES = ("memory://", "redis://", "rediss://", "redis+unix://", "redis+sentinel://", "redis+cluster://")


def _invalid(uri: str, why: Text, fix: Text) -> ConfigInvalid:
    return ConfigInvalid(why, fix=fix, keys=["server.rate_limit_storage"])


def redacted(uri: str) -> str:
    """``redis://:pass@host`` → ``redis://***@host`` for messages."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return scheme + sep + rest


def storage_for(uri: str, *, check: bool = True) -> Any:
    """The ``limits`` storage for ``uri`` (``server.rate_limit_storage``)."""
    from limits import storage
    from limits.errors import ConfigurationError

    if not uri.startswith(SCHEMES):
        raise _invalid(
            uri,
            Text(
                f"server.rate_limit_storage = {redacted(uri)!r} não é suportado.",
                f"server.rate_limit_storage = {redacted(uri)!r} is not supported.",
            ),
            Text(
                "Use memory:// (uma instância) ou redis://host:6379 (várias instâncias).",
                "Use memory:// (one instance) or redis://host:6379 (several instances).",
            ),
        )
    try:
        store = storage.storage_from_string(uri)
    except ConfigurationError as exc:
        raise _invalid(
            uri,
            Text(
                f"Não consegui usar {redacted(uri)} para os limites: {exc}",
                f"Could not use {redacted(uri)} for the limits: {exc}",
            ),
            Text(
                'Instale o cliente do Redis: pip install "linkpronto[redis]"',
                'Install the Redis client: pip install "linkpronto[redis]"',
            ),
        ) from exc
    if check and not uri.startswith("memory://") and not _answers(store):
        raise _invalid(
            uri,
            Text(
                f"O Redis em {redacted(uri)} não respondeu.",
                f"Redis at {redacted(uri)} did not answer.",
            ),
            Text(
                "Confira o endereço em server.rate_limit_storage e se o Redis está no ar.",
                "Check the address in server.rate_limit_storage and that Redis is up.",
            ),
        )
    return store


def _answers(store: Any) -> bool:
    try:
        return bool(store.check())
    except Exception:  # any client error means "not usable"; the message says where
        return False
