"""The browser files linkpronto serves itself: its own pages' JS/CSS and the vendored livekit-client.

``static/vendor/livekit-client.umd.js`` is **committed to the repository** (with its licence and a
``livekit-client.VERSION`` file), so a wheel or sdist built from a clean checkout carries it and
``pip install`` / ``pipx install`` / ``uv tool install`` serve working patient pages with no Node.js
anywhere — neither on the user's computer nor at build time. (A build step that runs ``npm`` would make
every wheel build depend on Node and the npm registry; the bundle is one pinned, minified file that
changes only when we upgrade livekit-client on purpose.) To upgrade: bump ``package.json``,
``npm install``, then ``python -m linkpronto.web.assets`` copies the new bundle and version here.
The pages load it from our own origin: no CDN, no third-party script. The UMD build is used because it
is minified (about 150 kB gzip) and needs no build step; it defines the global ``LivekitClient``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from linkpronto.errors import AssetsMissing as AssetsMissing  # re-exported: it lives in the one error tree
from linkpronto.paths import LIVEKIT_BUNDLE

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
VENDOR_DIR: Path = STATIC_DIR / "vendor"
VERSION_FILE = "livekit-client.VERSION"


def vendor_ready() -> bool:
    """True when the livekit-client bundle is in ``static/vendor`` and not empty."""
    bundle = VENDOR_DIR / LIVEKIT_BUNDLE
    return bundle.is_file() and bundle.stat().st_size > 0


def install_assets(project_root: Path) -> Path:
    """Copy ``node_modules/livekit-client/dist/livekit-client.umd.js`` into ``static/vendor/``.

    Returns the installed file. Raises :class:`AssetsMissing` (code ``ASSETS_MISSING``) when
    ``npm install`` has not been run in ``project_root``.
    """
    source = Path(project_root) / "node_modules" / "livekit-client" / "dist" / LIVEKIT_BUNDLE
    if not source.is_file():
        raise AssetsMissing(detail=f"not found: {source}")
    VENDOR_DIR.mkdir(parents=True, exist_ok=True)
    target = VENDOR_DIR / LIVEKIT_BUNDLE
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)  # atomic: a page never loads a half-written bundle
    license_file = source.parent.parent / "LICENSE"
    if license_file.is_file():
        shutil.copyfile(license_file, VENDOR_DIR / "livekit-client.LICENSE.txt")
    manifest = source.parent.parent / "package.json"
    if manifest.is_file():
        version = json.loads(manifest.read_text("utf-8")).get("version", "")
        (VENDOR_DIR / VERSION_FILE).write_text(f"{version}\n", "utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    try:
        installed = install_assets(root)
    except AssetsMissing as err:
        print(f"error[{err.code}]: {err.message()}", file=sys.stderr)
        fix = err.fix()
        if fix:
            print(f"fix: {fix}", file=sys.stderr)
        return 1
    print(installed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
