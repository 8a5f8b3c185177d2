"""``install_cloudflared`` against a local copy of the GitHub release API and downloads."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from install.release_double import FAKE_CLOUDFLARED, ReleaseServer, leftovers, make_tar_gz, sha256
from linkpronto.errors import InstallFailed
from linkpronto.install.cloudflared import asset_name, install_cloudflared, parse_release_notes

TAG = "2025.8.0"


def release_json(
    tag: str, notes: dict[str, str], digests: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """The shape of ``GET /repos/cloudflare/cloudflared/releases/latest`` (fields the installer reads)."""
    body = "### SHA256 Checksums:\n```\n" + "".join(f"{n}: {h}\n" for n, h in notes.items()) + "```"
    assets = [
        {
            "name": name,
            "browser_download_url": f"https://github.com/cloudflare/cloudflared/releases/download/{tag}/{name}",
            "digest": digest,
        }
        for name, digest in (digests or {}).items()
    ]
    return {"tag_name": tag, "name": tag, "body": body, "assets": assets}


def test_asset_names() -> None:
    assert asset_name("linux", "amd64") == "cloudflared-linux-amd64"
    assert asset_name("linux", "arm") == "cloudflared-linux-arm"
    assert asset_name("windows", "amd64") == "cloudflared-windows-amd64.exe"
    assert asset_name("darwin", "arm64") == "cloudflared-darwin-arm64.tgz"


def test_parse_release_notes() -> None:
    body = (
        "Some notes.\n### SHA256 Checksums:\n```\n"
        f"cloudflared-amd64.pkg: {'a' * 64}\ncloudflared-linux-amd64: {'B' * 64}\nnot a line: x\n```"
    )
    assert parse_release_notes(body) == {
        "cloudflared-amd64.pkg": "a" * 64,
        "cloudflared-linux-amd64": "b" * 64,
    }


@pytest.mark.slow
@pytest.mark.only_on("posix")  # runs a POSIX shell script
async def test_latest_linux_from_release_notes(release_server: ReleaseServer, tmp_path: Path) -> None:
    payload = FAKE_CLOUDFLARED + b"#" * 200_000  # several chunks
    release_server.add(f"/{TAG}/cloudflared-linux-amd64", payload)
    release_server.add_json(
        "/api/releases/latest",
        release_json(TAG, {"cloudflared-linux-amd64": sha256(payload), "cloudflared-linux-arm64": "0" * 64}),
    )
    progress: list[tuple[int, int | None]] = []
    bin_dir = tmp_path / "bin"

    path = await install_cloudflared(
        bin_dir,
        base_url=release_server.download_base,
        api_url=release_server.url("/api/releases"),
        progress=lambda d, t: progress.append((d, t)),
        os_arch=("linux", "amd64"),
    )

    assert path == bin_dir / "cloudflared"
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout.startswith("cloudflared version 2025.8.0")
    assert leftovers(bin_dir) == [path]
    done = [d for d, _ in progress]
    assert done == sorted(done) and done[-1] == len(payload) and len(done) > 2
    assert release_server.requests[0] == "/api/releases/latest"


async def test_pinned_version_with_asset_digest_only(release_server: ReleaseServer, tmp_path: Path) -> None:
    payload = b"MZ fake cloudflared.exe"
    name = "cloudflared-windows-amd64.exe"
    release_server.add(f"/{TAG}/{name}", payload)
    rel = release_json(TAG, {}, {name: "sha256:" + sha256(payload), "cloudflared-linux-amd64": None})
    release_server.add_json(f"/api/releases/tags/{TAG}", rel)

    path = await install_cloudflared(
        tmp_path / "bin",
        TAG,
        base_url=release_server.download_base,
        api_url=release_server.url("/api/releases"),
        os_arch=("windows", "amd64"),
    )
    assert path == tmp_path / "bin" / "cloudflared.exe"
    assert path.read_bytes() == payload


async def test_darwin_tgz_checks_digest_of_archive_and_notes_of_binary(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    name = "cloudflared-darwin-arm64.tgz"
    tgz = make_tar_gz([("cloudflared", FAKE_CLOUDFLARED, 0o755)])
    release_server.add(f"/{TAG}/{name}", tgz)
    # As Cloudflare publishes it: the notes hash the binary inside, GitHub's digest hashes the .tgz.
    rel = release_json(TAG, {name: sha256(FAKE_CLOUDFLARED)}, {name: "sha256:" + sha256(tgz)})
    release_server.add_json("/api/releases/latest", rel)

    path = await install_cloudflared(
        tmp_path / "bin",
        base_url=release_server.download_base,
        api_url=release_server.url("/api/releases"),
        os_arch=("darwin", "arm64"),
    )
    assert path.read_bytes() == FAKE_CLOUDFLARED


async def test_darwin_tgz_inner_binary_mismatch(release_server: ReleaseServer, tmp_path: Path) -> None:
    name = "cloudflared-darwin-amd64.tgz"
    tgz = make_tar_gz([("cloudflared", b"#!/bin/sh\necho tampered\n", 0o755)])
    release_server.add(f"/{TAG}/{name}", tgz)
    release_server.add_json("/api/releases/latest", release_json(TAG, {name: sha256(FAKE_CLOUDFLARED)}))
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_cloudflared(
            bin_dir,
            base_url=release_server.download_base,
            api_url=release_server.url("/api/releases"),
            os_arch=("darwin", "amd64"),
        )
    assert "SHA-256" in info.value.message("en")
    assert leftovers(bin_dir) == []


async def test_checksum_mismatch_installs_nothing(release_server: ReleaseServer, tmp_path: Path) -> None:
    release_server.add(f"/{TAG}/cloudflared-linux-amd64", b"#!/bin/sh\necho tampered\n")
    release_server.add_json(
        "/api/releases/latest", release_json(TAG, {"cloudflared-linux-amd64": sha256(FAKE_CLOUDFLARED)})
    )
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_cloudflared(
            bin_dir,
            base_url=release_server.download_base,
            api_url=release_server.url("/api/releases"),
            os_arch=("linux", "amd64"),
        )
    err = info.value
    assert "SHA-256" in err.message("en") and f"/{TAG}/cloudflared-linux-amd64" in err.message("en")
    assert "linkpronto install cloudflared" in (err.fix("en") or "")
    assert leftovers(bin_dir) == []


async def test_digest_mismatch_even_when_notes_match(release_server: ReleaseServer, tmp_path: Path) -> None:
    name = "cloudflared-linux-amd64"
    release_server.add(f"/{TAG}/{name}", FAKE_CLOUDFLARED)
    rel = release_json(TAG, {name: sha256(FAKE_CLOUDFLARED)}, {name: "sha256:" + "f" * 64})
    release_server.add_json("/api/releases/latest", rel)
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed):
        await install_cloudflared(
            bin_dir,
            base_url=release_server.download_base,
            api_url=release_server.url("/api/releases"),
            os_arch=("linux", "amd64"),
        )
    assert leftovers(bin_dir) == []


async def test_no_published_checksum_is_refused(release_server: ReleaseServer, tmp_path: Path) -> None:
    release_server.add(f"/{TAG}/cloudflared-linux-arm64", FAKE_CLOUDFLARED)
    release_server.add_json("/api/releases/latest", release_json(TAG, {"cloudflared-linux-amd64": "a" * 64}))
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_cloudflared(
            bin_dir,
            base_url=release_server.download_base,
            api_url=release_server.url("/api/releases"),
            os_arch=("linux", "arm64"),
        )
    assert "cloudflared-linux-arm64" in info.value.message("en")
    assert not any(r.startswith(f"/download/{TAG}") for r in release_server.requests)
    assert leftovers(bin_dir) == []


async def test_asset_missing_from_release(release_server: ReleaseServer, tmp_path: Path) -> None:
    rel = release_json(TAG, {}, {"cloudflared-linux-amd64": "sha256:" + "a" * 64})
    release_server.add_json(f"/api/releases/tags/{TAG}", rel)
    with pytest.raises(InstallFailed) as info:
        await install_cloudflared(
            tmp_path / "bin",
            TAG,
            base_url=release_server.download_base,
            api_url=release_server.url("/api/releases"),
            os_arch=("windows", "arm64"),
        )
    assert "cloudflared-windows-arm64.exe" in info.value.message("en")
    assert f"linkpronto install cloudflared --version {TAG}" in (info.value.fix("en") or "")


async def test_unknown_tag_404(release_server: ReleaseServer, tmp_path: Path) -> None:
    with pytest.raises(InstallFailed) as info:
        await install_cloudflared(
            tmp_path / "bin",
            "2099.1.0",
            base_url=release_server.download_base,
            api_url=release_server.url("/api/releases"),
            os_arch=("linux", "amd64"),
        )
    assert "404" in info.value.message("en") and "/api/releases/tags/2099.1.0" in info.value.message("en")
    assert leftovers(tmp_path / "bin") == []


async def test_invalid_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed):
        await install_cloudflared(tmp_path / "bin", "../latest", os_arch=("linux", "amd64"))
    assert list(tmp_path.iterdir()) == []
