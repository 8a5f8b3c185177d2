"""Platform-neutral helpers shared by both branches (no OS-specific calls here)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence

from linkpronto.errors import BinaryNotFound, ConfigInvalid
from linkpronto.i18n import Text


def resolve_argv(
    argv: Sequence[str],
    which: Callable[[str], str | None] = shutil.which,
) -> list[str]:
    """``argv`` with ``argv[0]`` resolved through PATH (and PATHEXT on Windows); BinaryNotFound if absent."""
    if not argv or not argv[0]:
        raise ConfigInvalid(
            Text("Comando vazio.", "Empty command."),
            fix=Text("Informe o comando a executar.", "Give the command to run."),
        )
    resolved = which(argv[0])
    if resolved is None:
        raise BinaryNotFound(
            Text(f"Não encontrei o programa '{argv[0]}'.", f"Could not find the program '{argv[0]}'."),
            fix=Text(
                f"Instale '{argv[0]}' ou informe o caminho completo dele na configuração.",
                f"Install '{argv[0]}' or give its full path in the configuration.",
            ),
            program=argv[0],
        )
    return [resolved, *argv[1:]]
