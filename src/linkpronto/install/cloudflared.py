"""Install ``cloudflared`` from Cloudflare's official GitHub release.

What Cloudflare publishes::

    https://github.com/cloudflare/cloudflared/releases/download/{tag}/cloudflared-linux-{arch}
    https://github.com/cloudflare/cloudflared/releases/download/{tag}/cloudflared-windows-{arch}.exe
    https://github.com/cloudflare/cloudflared/releases/download/{tag}/cloudflared-darwin-{arch}.tgz

Tags have no ``v`` (``2025.8.0``). There is no checksums file. The SHA-256s are in two places,
both read from the GitHub release API (``/repos/cloudflare/cloudflared/releases/latest`` or
``/releases/tags/{tag}``):

* ``body`` — the release notes, written by cloudflared's ``github_message.py``: a block
  ``### SHA256 Checksums:`` with one ``<asset name>: <sha256>`` line per asset. For the macOS
  ``.tgz`` the hash is of the ``cloudflared`` binary **inside** the archive, not of the archive
  (``github_release.py`` hashes the extracted file; cloudflared issues #1004 and #1648).
* ``assets[].digest`` — ``"sha256:<hex>"`` of the asset file itself, computed by GitHub for assets
  uploaded since June 2025.

Every hash that is published is checked: the digest against the downloaded file before anything is
unpacked, the notes' hash against the raw binary (linux/windows) or against the binary taken out of
the ``.tgz`` (macOS) before it is installed. With neither published the install is refused.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Final

from linkpronto.errors import InstallFailed
from linkpronto.i18n import Text
from linkpronto.install.common import (
    MANUAL_FIX_TEMPLATE,
    ProgressCallback,
    check_sha256,
    download,
    exe_name,
    extract_member,
    fetch_json,
    install_file,
    normalize_sha256,
    platform_triple,
    sha256_file,
    staging_dir,
)

DEFAULT_BASE_URL: Final = "https://github.com/cloudflare/cloudflared/releases/download"
DEFAULT_API_URL: Final = "https://api.github.com/repos/cloudflare/cloudflared/releases"
RELEASES_PAGE: Final = "https://github.com/cloudflare/cloudflared/releases"
BINARY_STEM: Final = "cloudflared"
API_HEADERS: Final = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

_TAG_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+){1,3}$")
_BODY_LINE_RE: Final = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*:\s*([0-9a-fA-F]{64})\s*$")


def asset_name(os_name: str, arch: str) -> str:
    if os_name == "windows":
        return f"cloudflared-windows-{arch}.exe"
    if os_name == "darwin":
        return f"cloudflared-darwin-{arch}.tgz"
    return f"cloudflared-{os_name}-{arch}"


def parse_release_notes(body: str) -> dict[str, str]:
    """``{asset name: sha256}`` from the lines ``<asset>: <sha256>`` in the release notes."""
    out: dict[str, str] = {}
    for raw in body.replace("`", "\n").splitlines():
        m = _BODY_LINE_RE.match(raw)
        if m:
            out[m.group(1)] = m.group(2).lower()
    return out


def _fix(version: str, bin_dir: Path) -> Text:
    command = "linkpronto install cloudflared"
    if version != "latest":
        command += f" --version {version}"
    return MANUAL_FIX_TEMPLATE.format(command=command, page=RELEASES_PAGE, bin_dir=bin_dir)


def _check_version(version: str) -> str:
    v = version.strip()
    if v == "latest" or _TAG_RE.match(v):
        return v
    raise InstallFailed(
        Text(f"Versão do cloudflared inválida: {version!r}.", f"Invalid cloudflared version: {version!r}."),
        fix=Text(
            "Use 'latest' ou uma versão como 2025.8.0: linkpronto install cloudflared --version 2025.8.0",
            "Use 'latest' or a version such as 2025.8.0: linkpronto install cloudflared --version 2025.8.0",
        ),
    )


def _release_error(what: Text, url: str, fix: Text, detail: str | None = None) -> InstallFailed:
    return InstallFailed(
        Text(f"Falha ao instalar: {what.pt} ({url})", f"Install failed: {what.en} ({url})"),
        fix=fix,
        detail=detail or url,
        url=url,
    )


async def install_cloudflared(
    bin_dir: Path,
    version: str = "latest",
    *,
    base_url: str = DEFAULT_BASE_URL,
    api_url: str = DEFAULT_API_URL,
    progress: ProgressCallback | None = None,
    os_arch: tuple[str, str] | None = None,
) -> Path:
    """Download, verify and install ``cloudflared`` into ``bin_dir``; return the installed path.

    ``version`` is a release tag (``2025.8.0``) or ``"latest"``. On any failure nothing is
    installed, no temp file is left and :class:`InstallFailed` is raised.
    """
    v = _check_version(version)
    os_name, arch = os_arch if os_arch is not None else platform_triple()
    fix = _fix(v, bin_dir)
    api = api_url.rstrip("/")
    release_url = f"{api}/latest" if v == "latest" else f"{api}/tags/{v}"
    asset = asset_name(os_name, arch)
    binary = exe_name(BINARY_STEM, os_name)
    is_archive = asset.endswith(".tgz")

    with staging_dir(bin_dir) as stage:
        release = await fetch_json(release_url, headers=API_HEADERS, fix=fix)
        tag, file_sha, notes_sha = _published_hashes(release, asset, release_url, fix)
        asset_url = f"{base_url.rstrip('/')}/{tag}/{asset}"

        downloaded = stage / asset
        actual = await download(asset_url, downloaded, progress=progress, fix=fix)
        if file_sha is not None:
            check_sha256(actual, file_sha, asset_url, fix)
        if is_archive:
            candidate = await asyncio.to_thread(
                extract_member, downloaded, binary, stage / f"{binary}.new", url=asset_url, fix=fix
            )
            if notes_sha is not None:
                check_sha256(await asyncio.to_thread(sha256_file, candidate), notes_sha, asset_url, fix)
        else:
            if notes_sha is not None:
                check_sha256(actual, notes_sha, asset_url, fix)
            candidate = downloaded
        return await asyncio.to_thread(install_file, candidate, bin_dir / binary, url=asset_url, fix=fix)


def _published_hashes(
    release: Any, asset: str, release_url: str, fix: Text
) -> tuple[str, str | None, str | None]:
    """``(tag, sha256 of the asset file or None, sha256 from the release notes or None)``."""
    if not isinstance(release, dict):
        raise _release_error(
            Text("a resposta da API do GitHub não é uma release", "the GitHub API answer is not a release"),
            release_url,
            fix,
        )
    tag = release.get("tag_name")
    if not isinstance(tag, str) or not _TAG_RE.match(tag):
        raise _release_error(
            Text("a release não tem uma versão (tag_name) válida", "the release has no valid tag_name"),
            release_url,
            fix,
            detail=f"{release_url}: tag_name={tag!r}",
        )
    assets = release.get("assets")
    file_sha: str | None = None
    if isinstance(assets, list) and assets:
        entry = next((a for a in assets if isinstance(a, dict) and a.get("name") == asset), None)
        if entry is None:
            raise _release_error(
                Text(
                    f"a release {tag} não tem o arquivo {asset} para esta plataforma",
                    f"release {tag} has no file {asset} for this platform",
                ),
                release_url,
                fix,
            )
        digest = entry.get("digest")
        if isinstance(digest, str) and digest.lower().startswith("sha256:"):
            file_sha = normalize_sha256(digest)
    body = release.get("body")
    notes_sha = parse_release_notes(body).get(asset) if isinstance(body, str) else None
    if file_sha is None and notes_sha is None:
        raise _release_error(
            Text(
                f"a release {tag} não publica o SHA-256 de {asset}; sem ele o download não pode ser "
                "conferido e não será instalado",
                f"release {tag} publishes no SHA-256 for {asset}; without it the download cannot be "
                "checked and will not be installed",
            ),
            release_url,
            fix,
        )
    return tag, file_sha, notes_sha
