"""A local stand-in for GitHub's release downloads and release API, plus real release archives.

``ReleaseServer`` imitates what the installers read from GitHub, as documented by the projects:

* ``https://github.com/<owner>/<repo>/releases/download/<tag>/<asset>`` answers ``302`` to a CDN
  URL that serves the bytes (``application/octet-stream`` with ``Content-Length``); here a
  ``/download/...`` path redirects to ``/cdn/...`` the same way.
* ``https://api.github.com/repos/<owner>/<repo>/releases/latest`` and ``/releases/tags/<tag>``
  answer the release JSON (``tag_name``, ``body``, ``assets[]`` with ``name`` and ``digest`` =
  ``"sha256:<hex>"``, per the REST docs "Get a release" and GitHub's 2025-06-03 changelog).
* Unknown paths answer ``404``.

The archives are built like the real ones: LiveKit's GoReleaser archives hold ``livekit-server``
(``.exe`` in the Windows zip) and ``LICENSE`` at the root (``.goreleaser.yaml``); cloudflared's
macOS ``.tgz`` holds ``cloudflared`` at the root (``github_release.py``). The "binaries" are tiny
shell scripts that print a version, so the tests can run what was installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from helpers.net import serve_http

LIVEKIT_VERSION = "1.9.11"
FAKE_LIVEKIT = b'#!/bin/sh\necho "livekit-server version 1.9.11"\n'
FAKE_CLOUDFLARED = b'#!/bin/sh\necho "cloudflared version 2025.8.0 (built 2025-08-06)"\n'
LICENSE_TEXT = b"Apache License\nVersion 2.0, January 2004\n"
# Big enough (hundreds of KB, poorly compressible) that a download arrives in many chunks.
README_TEXT = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() + b"\n" for i in range(6000))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class ReleaseServer:
    """Serves ``files`` (path → bytes) under ``/cdn``; ``/download/<rest>`` redirects to ``/cdn/<rest>``."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    @property
    def download_base(self) -> str:
        return self.url("/download")

    def add(self, path: str, data: bytes) -> None:
        self.files[path] = data

    def add_json(self, path: str, obj: object) -> None:
        self.files[path] = json.dumps(obj).encode()


def make_handler(server_state: ReleaseServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            server_state.requests.append(path)
            if path.startswith("/download/"):
                self.send_response(302)
                self.send_header("Location", "/cdn/" + path[len("/download/") :])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            key = path[len("/cdn") :] if path.startswith("/cdn/") else path
            data = server_state.files.get(key)
            if data is None:
                body = b"Not Found"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            ctype = "application/json" if key.startswith("/api/") else "application/octet-stream"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            view = memoryview(data)
            for i in range(0, len(data), 32 * 1024):  # several writes, like a real CDN stream
                self.wfile.write(view[i : i + 32 * 1024])

    return Handler


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tf.addfile(info, io.BytesIO(data))


def make_tar_gz(entries: list[tuple[str, bytes, int]], symlinks: tuple[tuple[str, str], ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, target in symlinks:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
        for name, data, mode in entries:
            _tar_add(tf, name, data, mode)
    return buf.getvalue()


def make_zip(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def livekit_tar_gz(binary: bytes = FAKE_LIVEKIT) -> bytes:
    """Like ``livekit_<v>_linux_amd64.tar.gz``: LICENSE and livekit-server at the root."""
    return make_tar_gz(
        [
            ("LICENSE", LICENSE_TEXT, 0o644),
            ("README.md", README_TEXT, 0o644),
            ("livekit-server", binary, 0o755),
        ]
    )


def livekit_zip(binary: bytes = FAKE_LIVEKIT) -> bytes:
    """Like ``livekit_<v>_windows_amd64.zip``."""
    return make_zip([("LICENSE", LICENSE_TEXT), ("README.md", README_TEXT), ("livekit-server.exe", binary)])


def checksums_txt(entries: dict[str, bytes]) -> bytes:
    """GoReleaser's ``checksums.txt``: ``<sha256>  <file>`` per line."""
    return "".join(f"{sha256(data)}  {name}\n" for name, data in entries.items()).encode()


def leftovers(bin_dir: Path) -> list[Path]:
    """Staging dirs or partial files an installer left next to or inside ``bin_dir``."""
    found = [p for p in bin_dir.parent.iterdir() if p.name.startswith(".linkpronto-install-")]
    if bin_dir.exists():
        found += list(bin_dir.iterdir())
    return found


@contextlib.contextmanager
def serve_releases() -> Iterator[ReleaseServer]:
    """Run a :class:`ReleaseServer` on a free 127.0.0.1 port for the duration of the block."""
    state = ReleaseServer()
    with serve_http(make_handler(state)) as httpd:
        state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
        yield state
