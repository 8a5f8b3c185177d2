"""``install_livekit`` against a local copy of a LiveKit GitHub release (see ``release_double``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from install.release_double import (
    FAKE_LIVEKIT,
    LICENSE_TEXT,
    LIVEKIT_VERSION,
    ReleaseServer,
    checksums_txt,
    leftovers,
    livekit_tar_gz,
    livekit_zip,
    make_tar_gz,
)
from linkpronto.errors import InstallFailed
from linkpronto.install.livekit import asset_name, install_livekit

V = LIVEKIT_VERSION
LINUX_ASSET = f"livekit_{V}_linux_amd64.tar.gz"
WINDOWS_ASSET = f"livekit_{V}_windows_amd64.zip"


def publish(server: ReleaseServer, assets: dict[str, bytes], checksums: bytes | None = None) -> None:
    for name, data in assets.items():
        server.add(f"/v{V}/{name}", data)
    server.add(f"/v{V}/checksums.txt", checksums if checksums is not None else checksums_txt(assets))


def test_asset_names_follow_goreleaser() -> None:
    assert asset_name("1.9.11", "linux", "amd64") == "livekit_1.9.11_linux_amd64.tar.gz"
    assert asset_name("1.9.11", "linux", "arm") == "livekit_1.9.11_linux_armv7.tar.gz"
    assert asset_name("1.9.11", "windows", "arm64") == "livekit_1.9.11_windows_arm64.zip"


@pytest.mark.slow
@pytest.mark.only_on("posix")  # runs a POSIX shell script
async def test_installs_linux_binary_that_runs(release_server: ReleaseServer, tmp_path: Path) -> None:
    archive = livekit_tar_gz()
    publish(release_server, {LINUX_ASSET: archive, WINDOWS_ASSET: livekit_zip()})
    progress: list[int] = []
    bin_dir = tmp_path / "data" / "bin"

    path = await install_livekit(
        bin_dir,
        f"v{V}",
        base_url=release_server.download_base,
        progress=lambda done, total: progress.append(done),
        os_arch=("linux", "amd64"),
    )

    assert path == bin_dir / "livekit-server"
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout.strip() == f"livekit-server version {V}"
    assert [p.name for p in bin_dir.iterdir()] == ["livekit-server"]  # no LICENSE, no README
    assert progress[-1] == len(archive) and progress == sorted(progress) and len(progress) > 2
    assert not [p for p in leftovers(bin_dir) if p != path]
    # The checksums file is read before the archive is downloaded.
    assert release_server.requests.index(f"/download/v{V}/checksums.txt") < release_server.requests.index(
        f"/download/v{V}/{LINUX_ASSET}"
    )


async def test_installs_windows_exe_from_zip(release_server: ReleaseServer, tmp_path: Path) -> None:
    publish(release_server, {LINUX_ASSET: livekit_tar_gz(), WINDOWS_ASSET: livekit_zip(b"MZ fake exe")})
    bin_dir = tmp_path / "bin"
    path = await install_livekit(
        bin_dir, V, base_url=release_server.download_base, os_arch=("windows", "amd64")
    )
    assert path == bin_dir / "livekit-server.exe"
    assert path.read_bytes() == b"MZ fake exe"
    assert leftovers(bin_dir) == [path]


async def test_reinstall_replaces_existing_binary(release_server: ReleaseServer, tmp_path: Path) -> None:
    publish(release_server, {LINUX_ASSET: livekit_tar_gz()})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "livekit-server").write_bytes(b"old")
    path = await install_livekit(
        bin_dir, V, base_url=release_server.download_base, os_arch=("linux", "amd64")
    )
    assert path.read_bytes() == FAKE_LIVEKIT


async def test_checksum_mismatch_installs_nothing(release_server: ReleaseServer, tmp_path: Path) -> None:
    good = livekit_tar_gz()
    publish(release_server, {LINUX_ASSET: good})
    release_server.add(f"/v{V}/{LINUX_ASSET}", livekit_tar_gz(b"#!/bin/sh\necho tampered\n"))
    bin_dir = tmp_path / "bin"

    with pytest.raises(InstallFailed) as info:
        await install_livekit(bin_dir, V, base_url=release_server.download_base, os_arch=("linux", "amd64"))

    err = info.value
    assert err.code == "INSTALL_FAILED"
    assert "SHA-256" in err.message("en") and LINUX_ASSET in err.message("en")
    assert f"linkpronto install livekit --version {V}" in (err.fix("en") or "")
    assert f"linkpronto install livekit --version {V}" in (err.fix("pt-BR") or "")
    assert leftovers(bin_dir) == []


async def test_existing_binary_survives_failed_install(release_server: ReleaseServer, tmp_path: Path) -> None:
    publish(release_server, {LINUX_ASSET: livekit_tar_gz()}, checksums=b"")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "livekit-server").write_bytes(b"old")
    with pytest.raises(InstallFailed):
        await install_livekit(bin_dir, V, base_url=release_server.download_base, os_arch=("linux", "amd64"))
    assert (bin_dir / "livekit-server").read_bytes() == b"old"


async def test_missing_checksum_entry(release_server: ReleaseServer, tmp_path: Path) -> None:
    publish(
        release_server,
        {LINUX_ASSET: livekit_tar_gz()},
        checksums=checksums_txt({WINDOWS_ASSET: livekit_zip()}),
    )
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_livekit(bin_dir, V, base_url=release_server.download_base, os_arch=("linux", "amd64"))
    assert "checksums" in info.value.message("en") and LINUX_ASSET in info.value.message("en")
    assert f"/download/v{V}/{LINUX_ASSET}" not in release_server.requests  # never downloaded
    assert leftovers(bin_dir) == []


async def test_unknown_version_404(release_server: ReleaseServer, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_livekit(
            bin_dir, "9.9.9", base_url=release_server.download_base, os_arch=("linux", "amd64")
        )
    assert "404" in info.value.message("en")
    assert "/v9.9.9/checksums.txt" in info.value.message("en")
    assert "linkpronto install livekit --version 9.9.9" in (info.value.fix("en") or "")
    assert leftovers(bin_dir) == []


async def test_archive_404_after_checksums(release_server: ReleaseServer, tmp_path: Path) -> None:
    release_server.add(f"/v{V}/checksums.txt", checksums_txt({LINUX_ASSET: livekit_tar_gz()}))
    bin_dir = tmp_path / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_livekit(bin_dir, V, base_url=release_server.download_base, os_arch=("linux", "amd64"))
    assert "404" in info.value.message("en") and LINUX_ASSET in info.value.message("en")
    assert leftovers(bin_dir) == []


async def test_legacy_checksums_file_name(release_server: ReleaseServer, tmp_path: Path) -> None:
    archive = livekit_tar_gz()
    release_server.add(f"/v{V}/{LINUX_ASSET}", archive)
    release_server.add(f"/v{V}/livekit_{V}_checksums.txt", checksums_txt({LINUX_ASSET: archive}))
    path = await install_livekit(
        tmp_path / "bin", V, base_url=release_server.download_base, os_arch=("linux", "amd64")
    )
    assert path.read_bytes() == FAKE_LIVEKIT


async def test_path_traversal_entry_is_never_written(release_server: ReleaseServer, tmp_path: Path) -> None:
    evil = make_tar_gz(
        [
            ("LICENSE", LICENSE_TEXT, 0o644),
            ("../../livekit-server", b"#!/bin/sh\necho pwned\n", 0o755),
            ("../escaped.txt", b"pwned", 0o644),
        ]
    )
    publish(release_server, {LINUX_ASSET: evil})
    bin_dir = tmp_path / "a" / "b" / "bin"
    with pytest.raises(InstallFailed) as info:
        await install_livekit(bin_dir, V, base_url=release_server.download_base, os_arch=("linux", "amd64"))
    assert "does not contain" in info.value.message("en")
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == ["a", "a/b"]


async def test_path_traversal_entry_is_skipped_next_to_the_real_binary(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    archive = make_tar_gz([("../livekit-server", b"evil", 0o755), ("livekit-server", FAKE_LIVEKIT, 0o755)])
    publish(release_server, {LINUX_ASSET: archive})
    path = await install_livekit(
        tmp_path / "bin", V, base_url=release_server.download_base, os_arch=("linux", "amd64")
    )
    assert path.read_bytes() == FAKE_LIVEKIT
    assert not (tmp_path / "livekit-server").exists()


async def test_macos_points_to_homebrew(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed) as info:
        await install_livekit(tmp_path / "bin", V, base_url="http://127.0.0.1:9", os_arch=("darwin", "arm64"))
    assert "brew install livekit" in (info.value.fix("en") or "")
    assert "brew install livekit" in (info.value.fix("pt-BR") or "")
    assert not (tmp_path / "bin").exists()


async def test_invalid_version_is_refused_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(InstallFailed):
        await install_livekit(tmp_path / "bin", "../../etc", os_arch=("linux", "amd64"))
    assert list(tmp_path.iterdir()) == []
