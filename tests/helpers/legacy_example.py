"""``examples/nextjs-legacy`` in both states: the repository holds the MIGRATED app plus
``MIGRATION.diff`` (the guide's exact diffs, before → after). :func:`unmigrated_copy` rebuilds the app as
it was before the migration by applying that diff in reverse to a copy; :func:`migrated_copy` is a plain
copy. Neither touches the repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

LEGACY = Path(__file__).resolve().parents[2] / "examples" / "nextjs-legacy"
DIFF = LEGACY / "MIGRATION.diff"
_SKIP = ("node_modules", ".next", ".linkpronto")


def migrated_copy(dest: Path) -> Path:
    """A copy of the example as shipped (migrated), without node_modules/.next."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(LEGACY, dest, ignore=shutil.ignore_patterns(*_SKIP))
    return dest


def unmigrated_copy(dest: Path) -> Path:
    """A copy of the example before the migration (``MIGRATION.diff`` applied in reverse)."""
    migrated_copy(dest)
    if DIFF.is_file():
        # git apply works outside a repository too (and on Windows), unlike patch(1).
        subprocess.run(["git", "apply", "-R", "--whitespace=nowarn", "-p1", str(DIFF)], cwd=dest, check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        (dest / "MIGRATION.diff").unlink(missing_ok=True)
        (dest / "MIGRATION.md").unlink(missing_ok=True)
    return dest
