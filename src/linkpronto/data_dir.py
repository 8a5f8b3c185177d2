"""Where linkpronto keeps its data when ``server.data_dir`` is not set: the platform's user data folder,
one per project path — never inside the project.

Why (issue 16): run from the app's folder, a ``./.linkpronto/`` sits in the tree ``next dev`` watches —
every link written touches ``links.db-wal``, ``next dev`` recompiles, and requests meanwhile fail with
500 — and ``git status`` shows the admin token, secrets and links as an untracked folder.

``platformdirs.user_data_path("linkpronto")/projects/<name>-<hash>``: ``~/.local/share/linkpronto/...``
on Linux, ``~/Library/Application Support/linkpronto/...`` on macOS, ``%LOCALAPPDATA%\\linkpronto\\...``
on Windows; ``<hash>`` is 12 hex digits of SHA-256 of the resolved project path, ``<name>`` its folder
name (readable in a listing). An existing ``./.linkpronto/`` is moved there once (permissions kept);
when it cannot be moved it stays in use, with a warning.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from pathlib import Path

from linkpronto.i18n import Text

LEGACY_NAME = ".linkpronto"

MOVED = Text(
    "Pasta de dados do linkpronto movida de {old} para {new} (fora do projeto: o next dev não recompila a "
    "cada link, e o git não a vê). Todos os links continuam valendo.",
    "linkpronto's data folder moved from {old} to {new} (outside the project: next dev does not recompile "
    "at every link, and git does not see it). Every link still works.",
)
KEPT = Text(
    "Aviso: a pasta de dados {old} está dentro do projeto e não pôde ser movida ({why}); ela continua em uso. "
    "Mova-a para {new} com o linkpronto parado, ou defina server.data_dir.",
    "Warning: the data folder {old} is inside the project and could not be moved ({why}); it stays in use. "
    "Move it to {new} with linkpronto stopped, or set server.data_dir.",
)


def project_data_dir(project: Path) -> Path:
    import platformdirs

    resolved = project.resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", resolved.name).strip("-.")[:40] or "root"
    base = platformdirs.user_data_path("linkpronto", appauthor=False)
    return base / "projects" / f"{name}-{digest}"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def default_data_dir(project: Path) -> Path:
    """The data folder for ``project`` when none is configured, migrating ``project/.linkpronto``."""
    new = project_data_dir(project)
    old = project / LEGACY_NAME
    if not old.is_dir() or new.exists():
        return new
    from linkpronto.errors import LinkprontoError
    from linkpronto.platform import make_private_tree, orchestrator_lock

    why = ""
    try:
        with orchestrator_lock(old):
            pass  # a linkpronto running from it holds this lock: never move it from under its feet
    except LinkprontoError:
        why = "in use"
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    if not why:
        try:
            new.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.move(str(old), str(new))  # a rename on one filesystem (modes kept); else copy2 + delete
            make_private_tree(new)  # 0700 folders, 0600 files, whatever the move did
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            if new.exists() and old.exists():
                shutil.rmtree(new, ignore_errors=True)  # half a copy: keep the whole original
    if why:
        _say(KEPT.format(old=old, new=new, why=why).get(None))
        return old
    _say(MOVED.format(old=old, new=new).get(None))
    return new
