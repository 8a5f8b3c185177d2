"""Download, checksum and archive helpers shared by the installers."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from install.release_double import ReleaseServer, make_tar_gz, make_zip, sha256
from linkpronto.errors import InstallFailed
from linkpronto.install.common import (
    check_sha256,
    download,
    extract_member,
    install_file,
    normalize_sha256,
    parse_checksums,
    platform_triple,
    staging_dir,
)


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [
        ("Linux", "x86_64", ("linux", "amd64")),
        ("Linux", "aarch64", ("linux", "arm64")),
        ("Linux", "armv7l", ("linux", "arm")),
        ("Windows", "AMD64", ("windows", "amd64")),
        ("Windows", "ARM64", ("windows", "arm64")),
        ("Darwin", "arm64", ("darwin", "arm64")),
        ("Darwin", "x86_64", ("darwin", "amd64")),
    ],
)
def test_platform_triple_maps_platform_names(system: str, machine: str, expected: tuple[str, str]) -> None:
    assert platform_triple(machine=machine, system=system) == expected


def test_platform_triple_of_this_machine_is_known() -> None:
    os_name, arch = platform_triple()
    assert os_name in {"linux", "windows", "darwin"}
    assert arch in {"amd64", "arm64", "arm"}


def test_platform_triple_refuses_unknown_cpu() -> None:
    with pytest.raises(InstallFailed) as info:
        platform_triple(machine="riscv64", system="Linux")
    assert info.value.code == "INSTALL_FAILED"
    assert "riscv64" in info.value.message("en")


def test_parse_checksums_reads_goreleaser_and_binary_mode_lines() -> None:
    a, b = "a" * 64, "B" * 64
    text = (
        f"# comment\n{a}  livekit_1.9.11_linux_amd64.tar.gz\n"
        f"{b} *livekit_1.9.11_windows_amd64.zip\n\nnot-a-sha  x\n"
    )
    assert parse_checksums(text) == {
        "livekit_1.9.11_linux_amd64.tar.gz": a,
        "livekit_1.9.11_windows_amd64.zip": "b" * 64,
    }


def test_normalize_sha256_accepts_github_digest_form() -> None:
    assert normalize_sha256("sha256:" + "AB" * 32) == "ab" * 32
    assert normalize_sha256("md5:abc") is None
    assert normalize_sha256("abc") is None


def test_check_sha256_mismatch_names_both_hashes() -> None:
    with pytest.raises(InstallFailed) as info:
        check_sha256("0" * 64, "1" * 64, "http://x/y", None)
    assert "0" * 64 in (info.value.detail or "")
    assert "1" * 64 in (info.value.detail or "")
    assert "http://x/y" in info.value.message("pt-BR")


async def test_download_follows_redirects_reports_growing_progress_and_hashes(
    release_server: ReleaseServer, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 1200  # 300 KiB: several chunks
    release_server.add("/v1/asset.bin", payload)
    seen: list[tuple[int, int | None]] = []

    dest = tmp_path / "out" / "asset.bin"
    digest = await download(
        release_server.url("/download/v1/asset.bin"), dest, progress=lambda d, t: seen.append((d, t))
    )

    assert digest == sha256(payload)
    assert dest.read_bytes() == payload
    assert release_server.requests == ["/download/v1/asset.bin", "/cdn/v1/asset.bin"]
    done = [d for d, _ in seen]
    assert len(done) > 3
    assert done == sorted(done)
    assert done[-1] == len(payload)
    assert {t for _, t in seen} == {len(payload)}
    assert list(dest.parent.iterdir()) == [dest]


async def test_download_404_raises_and_leaves_no_file(release_server: ReleaseServer, tmp_path: Path) -> None:
    url = release_server.url("/download/v1/missing.bin")
    with pytest.raises(InstallFailed) as info:
        await download(url, tmp_path / "missing.bin")
    assert "404" in info.value.message("en")
    assert url in info.value.message("en")
    assert list(tmp_path.iterdir()) == []


async def test_download_network_error_raises(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(InstallFailed) as info:
        await download(f"http://127.0.0.1:{port}/x", tmp_path / "x", timeout_s=5)
    assert "network" in info.value.message("en")
    assert list(tmp_path.iterdir()) == []


def test_extract_member_ignores_traversal_and_links(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(
        make_tar_gz(
            [("../livekit-server", b"evil", 0o755), ("/abs/livekit-server", b"evil", 0o755)],
            symlinks=(("livekit-server", "/etc/passwd"),),
        )
    )
    with pytest.raises(InstallFailed) as info:
        extract_member(archive, "livekit-server", tmp_path / "out", url="u", fix=None)
    assert "does not contain" in info.value.message("en")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path.parent / "livekit-server").exists()


def test_extract_member_takes_the_safe_entry_only(tmp_path: Path) -> None:
    archive = tmp_path / "mixed.zip"
    archive.write_bytes(make_zip([("..\\livekit-server.exe", b"evil"), ("livekit-server.exe", b"good")]))
    out = extract_member(archive, "livekit-server.exe", tmp_path / "out", url="u", fix=None)
    assert out.read_bytes() == b"good"


def test_extract_member_bad_archive(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InstallFailed) as info:
        extract_member(archive, "livekit-server", tmp_path / "out", url="http://x/broken.tar.gz", fix=None)
    assert "damaged" in info.value.message("en")


def test_install_file_replaces_atomically_and_makes_executable(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tool").write_bytes(b"old")
    with staging_dir(bin_dir) as stage:
        new = stage / "tool.new"
        new.write_bytes(b"new")
        installed = install_file(new, bin_dir / "tool", url="u", fix=None)
    assert installed.read_bytes() == b"new"
    if os.name == "posix":  # Windows has no executable bit: the extension decides
        assert installed.stat().st_mode & 0o100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
