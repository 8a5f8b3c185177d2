"""Install ``livekit-server`` from LiveKit's official GitHub release.

What LiveKit publishes (its ``.goreleaser.yaml``: builds for linux and windows on amd64, arm64 and
arm with GOARM 7; Windows archives are zip; archives carry the binary and ``LICENSE`` at the root;
``checksum.name_template: 'checksums.txt'``)::

    https://github.com/livekit/livekit/releases/download/v{version}/livekit_{version}_{os}_{arch}.tar.gz
    https://github.com/livekit/livekit/releases/download/v{version}/livekit_{version}_windows_{arch}.zip
    https://github.com/livekit/livekit/releases/download/v{version}/checksums.txt
        <sha256>  livekit_{version}_linux_amd64.tar.gz        (one line per archive)

``arch`` is ``amd64``, ``arm64`` or ``armv7`` (GoReleaser's name for GOARCH=arm, GOARM=7). There is
no macOS build: LiveKit's own install script sends macOS users to Homebrew (``brew install livekit``).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Final

from linkpronto.errors import InstallFailed
from linkpronto.i18n import Text
from linkpronto.install.common import (
    MANUAL_FIX_TEMPLATE,
    ProgressCallback,
    check_sha256,
    download,
    exe_name,
    extract_member,
    fetch_text,
    install_file,
    parse_checksums,
    platform_triple,
    staging_dir,
)

DEFAULT_BASE_URL: Final = "https://github.com/livekit/livekit/releases/download"
RELEASES_PAGE: Final = "https://github.com/livekit/livekit/releases"
BINARY_STEM: Final = "livekit-server"
CHECKSUMS_NAME: Final = "checksums.txt"
# GoReleaser's default name, in case an older release was published without the template above.
LEGACY_CHECKSUMS_TEMPLATE: Final = "livekit_{version}_checksums.txt"

_VERSION_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+){1,3}(-[0-9A-Za-z.]+)?$")
_ARCH_IN_ASSET: Final[dict[str, str]] = {"amd64": "amd64", "arm64": "arm64", "arm": "armv7"}


def normalize_version(version: str) -> str:
    """``"v1.9.11"`` → ``"1.9.11"``; rejects anything that is not a plain version."""
    v = version.strip()
    if v[:1] in ("v", "V"):
        v = v[1:]
    if not _VERSION_RE.match(v):
        raise InstallFailed(
            Text(f"Versão do LiveKit inválida: {version!r}.", f"Invalid LiveKit version: {version!r}."),
            fix=Text(
                "Use uma versão como 1.9.11, por exemplo: linkpronto install livekit --version 1.9.11",
                "Use a version such as 1.9.11, for example: linkpronto install livekit --version 1.9.11",
            ),
        )
    return v


def asset_name(version: str, os_name: str, arch: str) -> str:
    ext = "zip" if os_name == "windows" else "tar.gz"
    return f"livekit_{version}_{os_name}_{_ARCH_IN_ASSET.get(arch, arch)}.{ext}"


def _fix(version: str, bin_dir: Path) -> Text:
    return MANUAL_FIX_TEMPLATE.format(
        command=f"linkpronto install livekit --version {version}", page=RELEASES_PAGE, bin_dir=bin_dir
    )


def _macos_error(version: str) -> InstallFailed:
    return InstallFailed(
        Text(
            "O LiveKit não publica o livekit-server para macOS; ele é instalado pelo Homebrew.",
            "LiveKit does not publish livekit-server for macOS; it is installed with Homebrew.",
        ),
        fix=Text(
            "Rode: brew install livekit  (depois rode linkpronto up de novo).",
            "Run: brew install livekit  (then run linkpronto up again).",
        ),
        detail=f"livekit-server {version} darwin",
    )


async def install_livekit(
    bin_dir: Path,
    version: str,
    *,
    base_url: str = DEFAULT_BASE_URL,
    progress: ProgressCallback | None = None,
    os_arch: tuple[str, str] | None = None,
) -> Path:
    """Download, verify and install ``livekit-server`` into ``bin_dir``; return the installed path.

    The checksums file is read first and the archive is refused unless its SHA-256 matches, before
    anything is unpacked. Only the binary is taken out of the archive. On any failure nothing is
    installed, no temp file is left and :class:`InstallFailed` is raised.
    """
    v = normalize_version(version)
    os_name, arch = os_arch if os_arch is not None else platform_triple()
    if os_name == "darwin":
        raise _macos_error(v)
    fix = _fix(v, bin_dir)
    base = base_url.rstrip("/")
    archive = asset_name(v, os_name, arch)
    archive_url = f"{base}/v{v}/{archive}"
    binary = exe_name(BINARY_STEM, os_name)

    with staging_dir(bin_dir) as stage:
        expected = await _expected_sha256(base, v, archive, fix)
        archive_path = stage / archive
        actual = await download(archive_url, archive_path, progress=progress, fix=fix)
        check_sha256(actual, expected, archive_url, fix)
        unpacked = await asyncio.to_thread(
            extract_member, archive_path, binary, stage / f"{binary}.new", url=archive_url, fix=fix
        )
        return await asyncio.to_thread(install_file, unpacked, bin_dir / binary, url=archive_url, fix=fix)


async def _expected_sha256(base: str, version: str, archive: str, fix: Text) -> str:
    url = f"{base}/v{version}/{CHECKSUMS_NAME}"
    try:
        text = await fetch_text(url, fix=fix)
    except InstallFailed as first:
        if first.context.get("status") != 404:
            raise
        legacy = f"{base}/v{version}/{LEGACY_CHECKSUMS_TEMPLATE.format(version=version)}"
        try:
            text = await fetch_text(legacy, fix=fix)
        except InstallFailed:
            raise first from None
        url = legacy
    sums = parse_checksums(text)
    expected = sums.get(archive)
    if expected is None:
        raise InstallFailed(
            Text(
                f"Falha ao instalar: o arquivo de checksums não lista {archive}; esta versão pode não "
                f"existir para esta plataforma ({url})",
                f"Install failed: the checksums file does not list {archive}; this version may not "
                f"exist for this platform ({url})",
            ),
            fix=fix,
            detail=f"{url}: no entry for {archive} (entries: {', '.join(sorted(sums)) or 'none'})",
            url=url,
        )
    return expected
