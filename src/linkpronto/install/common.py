"""What every installer shares: streaming download with progress, checksums, safe unpack, atomic install.

The flow of an install, in order, and where each step lives::

    staging_dir(bin_dir)            temp dir next to bin_dir (same filesystem, removed on exit)
      fetch_text / fetch_json       small published metadata (checksums file, release JSON)
      download(url, dest)           streams the asset, returns its SHA-256
      check_sha256(...)             refuses the asset before anything is unpacked or installed
      extract_member(archive, ...)  copies out the ONE binary; never extracts paths from the archive
      install_file(src, dest)       chmod +x and an atomic ``os.replace`` into bin_dir

Every failure becomes :class:`~linkpronto.errors.InstallFailed` naming the URL and what went wrong,
with the fix the caller chose (the exact ``linkpronto install ...`` command, or a manual download).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final

import httpx

from linkpronto import __version__
from linkpronto.errors import InstallFailed
from linkpronto.i18n import Text

ProgressCallback = Callable[[int, int | None], None]
"""``(bytes_done, total_or_None)``; ``total`` is ``None`` when the server did not say."""

DEFAULT_DOWNLOAD_TIMEOUT_S: Final = 300.0
METADATA_TIMEOUT_S: Final = 30.0
CHUNK_SIZE: Final = 64 * 1024
MAX_METADATA_BYTES: Final = 8 * 1024 * 1024  # a checksums file or a release JSON; far larger is wrong
MAX_BINARY_BYTES: Final = 1024 * 1024 * 1024  # 1 GiB: guards against a decompression bomb
USER_AGENT: Final = f"linkpronto/{__version__}"

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")

_MACHINE_ARCH: Final[dict[str, str]] = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "x64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8l": "arm64",
    "armv7l": "arm",
    "armv7": "arm",
    "armv6l": "arm",
    "arm": "arm",
}

MANUAL_FIX_TEMPLATE = Text(
    "Tente de novo com: {command}. Se continuar falhando, baixe manualmente de {page}, "
    "confira o SHA-256 e coloque o programa em {bin_dir}.",
    "Try again with: {command}. If it keeps failing, download it yourself from {page}, "
    "check its SHA-256 and put the program in {bin_dir}.",
)


def platform_triple(machine: str | None = None, system: str | None = None) -> tuple[str, str]:
    """``("linux"|"windows"|"darwin", "amd64"|"arm64"|"arm")`` for this machine (or the given values).

    Raises :class:`InstallFailed` for an OS or CPU no installer has a release for.
    """
    sys_name = (system if system is not None else platform.system()).strip().lower()
    mach = (machine if machine is not None else platform.machine()).strip().lower()
    os_name = {"linux": "linux", "windows": "windows", "darwin": "darwin"}.get(sys_name)
    arch = _MACHINE_ARCH.get(mach)
    if os_name is None or arch is None:
        raise InstallFailed(
            Text(
                f"Não há instalador para este sistema ({sys_name or '?'} / {mach or '?'}).",
                f"There is no installer for this system ({sys_name or '?'} / {mach or '?'}).",
            ),
            fix=Text(
                "Instale o programa pelo site oficial e informe o caminho em linkpronto.toml.",
                "Install the program from its official site and set its path in linkpronto.toml.",
            ),
            detail=f"platform.system()={sys_name!r} platform.machine()={mach!r}",
        )
    return os_name, arch


def exe_name(stem: str, os_name: str) -> str:
    from linkpronto.platform import executable_name

    return executable_name(stem, os_name)


def new_client(timeout_s: float = METADATA_TIMEOUT_S) -> httpx.AsyncClient:
    """An HTTP client that follows redirects (GitHub release downloads redirect to a CDN)."""
    return httpx.AsyncClient(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
        headers={"User-Agent": USER_AGENT},
    )


# --------------------------------------------------------------------------------------------------
# Errors


def _failed(
    what: Text, url: str, fix: Text | None, detail: str | None = None, status: int | None = None
) -> InstallFailed:
    message = Text(f"Falha ao instalar: {what.pt} ({url})", f"Install failed: {what.en} ({url})")
    return InstallFailed(message, fix=fix, detail=detail or url, url=url, status=status)


def _http_error(exc: httpx.HTTPError | httpx.InvalidURL, url: str, fix: Text | None) -> InstallFailed:
    if isinstance(exc, httpx.TimeoutException):
        what = Text("o servidor demorou demais para responder", "the server took too long to answer")
    else:
        what = Text(
            f"erro de rede ({type(exc).__name__}); confira a conexão com a internet",
            f"network error ({type(exc).__name__}); check the internet connection",
        )
    return _failed(what, url, fix, detail=f"{url}: {type(exc).__name__}: {exc}")


def _status_error(status: int, url: str, fix: Text | None) -> InstallFailed:
    if status == 404:
        what = Text(
            "arquivo não encontrado (HTTP 404); a versão ou a plataforma pode não existir",
            "file not found (HTTP 404); the version or the platform may not exist",
        )
    elif status in (403, 429):
        what = Text(
            f"o servidor recusou o pedido (HTTP {status}); pode ser limite de requisições, "
            "espere alguns minutos",
            f"the server refused the request (HTTP {status}); it may be a rate limit, wait a few minutes",
        )
    else:
        what = Text(f"o servidor respondeu HTTP {status}", f"the server answered HTTP {status}")
    return _failed(what, url, fix, detail=f"{url}: HTTP {status}", status=status)


# --------------------------------------------------------------------------------------------------
# Downloads


@contextlib.asynccontextmanager
async def _client_or_new(
    client: httpx.AsyncClient | None, timeout_s: float
) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    async with new_client(timeout_s) as own:
        yield own


async def download(
    url: str,
    dest: Path,
    *,
    progress: ProgressCallback | None = None,
    timeout_s: float = DEFAULT_DOWNLOAD_TIMEOUT_S,
    client: httpx.AsyncClient | None = None,
    fix: Text | None = None,
) -> str:
    """Stream ``url`` into ``dest`` and return the SHA-256 (hex) of what was written.

    Writes to a temp file next to ``dest`` and renames it only when the whole body arrived, so
    ``dest`` never holds a partial file. Redirects are followed. ``timeout_s`` bounds the whole
    download. Raises :class:`InstallFailed` (HTTP status, network error, timeout).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                async with asyncio.timeout(timeout_s), _client_or_new(client, timeout_s) as http:
                    await _stream_to(http, url, out, digest, progress, fix)
            except TimeoutError as exc:
                raise _http_error(httpx.TimeoutException(str(exc) or "deadline"), url, fix) from exc
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise _http_error(exc, url, fix) from exc
            except OSError as exc:
                raise _failed(
                    Text(
                        f"não foi possível gravar o arquivo ({exc.strerror or exc})",
                        f"could not write the file ({exc.strerror or exc})",
                    ),
                    url,
                    fix,
                    detail=f"{dest}: {exc}",
                ) from exc
        os.replace(tmp, dest)
        done = True
    finally:
        if not done:
            _discard(tmp)
    return digest.hexdigest()


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _stream_to(
    http: httpx.AsyncClient,
    url: str,
    out: IO[bytes],
    digest: Any,
    progress: ProgressCallback | None,
    fix: Text | None,
) -> None:
    async with http.stream("GET", url, follow_redirects=True) as resp:
        if resp.status_code != 200:
            raise _status_error(resp.status_code, url, fix)
        total: int | None = None
        length = resp.headers.get("content-length")
        if length is not None and length.isdigit() and not resp.headers.get("content-encoding"):
            total = int(length)
        received = 0
        if progress is not None:
            progress(0, total)
        async for chunk in resp.aiter_bytes(CHUNK_SIZE):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            if received > MAX_BINARY_BYTES:
                raise _failed(Text("o arquivo é grande demais", "the file is far too large"), url, fix)
            if progress is not None:
                progress(received, total)
        if total is not None and received != total:
            raise _failed(
                Text(
                    f"o download terminou incompleto ({received} de {total} bytes)",
                    f"the download ended incomplete ({received} of {total} bytes)",
                ),
                url,
                fix,
            )


async def fetch_bytes(
    url: str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout_s: float = METADATA_TIMEOUT_S,
    headers: dict[str, str] | None = None,
    fix: Text | None = None,
    max_bytes: int = MAX_METADATA_BYTES,
) -> bytes:
    """GET a small document (checksums file, release JSON); bounded in time and size."""
    try:
        async with asyncio.timeout(timeout_s), _client_or_new(client, timeout_s) as http:
            async with http.stream("GET", url, headers=headers, follow_redirects=True) as resp:
                if resp.status_code != 200:
                    raise _status_error(resp.status_code, url, fix)
                body = bytearray()
                async for chunk in resp.aiter_bytes(CHUNK_SIZE):
                    body += chunk
                    if len(body) > max_bytes:
                        raise _failed(
                            Text("a resposta é grande demais", "the answer is far too large"), url, fix
                        )
                return bytes(body)
    except TimeoutError as exc:
        raise _http_error(httpx.TimeoutException(str(exc) or "deadline"), url, fix) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _http_error(exc, url, fix) from exc


async def fetch_text(url: str, **kw: Any) -> str:
    data = await fetch_bytes(url, **kw)
    return data.decode("utf-8", errors="replace")


async def fetch_json(url: str, *, fix: Text | None = None, **kw: Any) -> Any:
    data = await fetch_bytes(url, fix=fix, **kw)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise _failed(
            Text("a resposta não é um JSON válido", "the answer is not valid JSON"), url, fix
        ) from exc


# --------------------------------------------------------------------------------------------------
# Checksums


def normalize_sha256(value: str) -> str | None:
    """``"sha256:ABC.."`` or ``"abc.."`` → lower-case hex, or ``None`` when it is not a SHA-256."""
    v = value.strip()
    if v.lower().startswith("sha256:"):
        v = v[len("sha256:") :]
    return v.lower() if _SHA256_RE.match(v) else None


def parse_checksums(text: str) -> dict[str, str]:
    """Parse a ``sha256sum``-style file (``<sha256>  <name>`` or ``<sha256> *<name>``).

    Lines that are empty, comments, or not a SHA-256 are skipped. Names are the last path part.
    """
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            continue
        sha = normalize_sha256(parts[0])
        if sha is None:
            continue
        name = parts[1].strip().lstrip("*").strip()
        if name:
            out[PurePosixPath(name.replace("\\", "/")).name] = sha
    return out


def check_sha256(actual: str, expected: str, url: str, fix: Text | None) -> None:
    """Raise :class:`InstallFailed` unless ``actual`` equals ``expected`` (hex, any case)."""
    if actual.lower() != expected.lower():
        raise _failed(
            Text(
                "o arquivo baixado não confere com o SHA-256 publicado (download corrompido ou "
                "adulterado); nada foi instalado",
                "the downloaded file does not match the published SHA-256 (corrupted or tampered "
                "download); nothing was installed",
            ),
            url,
            fix,
            detail=f"{url}: expected sha256 {expected.lower()}, got {actual.lower()}",
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Archives


def _safe_member_name(name: str) -> PurePosixPath | None:
    """The member's path if it is relative and stays inside the archive; ``None`` otherwise."""
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if not norm or path.is_absolute() or re.match(r"^[A-Za-z]:", norm):
        return None
    if any(part == ".." for part in path.parts):
        return None
    return path


def _matches(name: str, binary: str) -> bool:
    path = _safe_member_name(name)
    return path is not None and path.name == binary


def _copy_bounded(src: IO[bytes], dest: Path, url: str, fix: Text | None) -> None:
    written = 0
    with dest.open("wb") as out:
        for chunk in iter(lambda: src.read(CHUNK_SIZE), b""):
            written += len(chunk)
            if written > MAX_BINARY_BYTES:
                raise _failed(
                    Text("o arquivo compactado é grande demais", "the archive is far too large"),
                    url,
                    fix,
                )
            out.write(chunk)


def extract_member(archive: Path, binary: str, dest: Path, *, url: str, fix: Text | None) -> Path:
    """Copy the one regular file named ``binary`` out of a ``.tar.gz``/``.tgz`` or ``.zip`` to ``dest``.

    Only this file is read; the archive's paths are never used to write anything. Entries with an
    absolute path, a drive letter or ``..`` are ignored, and so are links and devices. Raises
    :class:`InstallFailed` when the archive is unreadable or holds no such file.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    if info.is_dir() or not _matches(info.filename, binary):
                        continue
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode and not stat.S_ISREG(mode):  # a symlink stored in a zip
                        continue
                    with zf.open(info) as zsrc:
                        _copy_bounded(zsrc, dest, url, fix)
                    return dest
        else:
            with tarfile.open(archive, "r:*") as tf:
                for member in tf:
                    if not member.isreg() or not _matches(member.name, binary):
                        continue
                    tsrc = tf.extractfile(member)
                    if tsrc is None:
                        continue
                    with tsrc:
                        _copy_bounded(tsrc, dest, url, fix)
                    return dest
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        dest.unlink(missing_ok=True)
        raise _failed(
            Text(
                f"o arquivo compactado está danificado ({type(exc).__name__})",
                f"the archive is damaged ({type(exc).__name__})",
            ),
            url,
            fix,
            detail=f"{url}: {type(exc).__name__}: {exc}",
        ) from exc
    raise _failed(
        Text(
            f"o arquivo compactado não contém o programa {binary}",
            f"the archive does not contain the program {binary}",
        ),
        url,
        fix,
    )


# --------------------------------------------------------------------------------------------------
# Staging and install


@contextlib.contextmanager
def staging_dir(bin_dir: Path) -> Iterator[Path]:
    """A temp dir next to ``bin_dir`` (same filesystem, so the final rename is atomic); always removed."""
    parent = bin_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=".linkpronto-install-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def install_file(src: Path, dest: Path, *, url: str, fix: Text | None) -> Path:
    """Make ``src`` executable and move it atomically to ``dest`` (replacing an older copy)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        mode = src.stat().st_mode
        src.chmod(mode | stat.S_IRUSR | stat.S_IWUSR | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(src, dest)
    except OSError as exc:
        raise _failed(
            Text(
                f"não foi possível colocar o programa em {dest} ({exc.strerror or exc}); se ele "
                "estiver rodando, pare o linkpronto (linkpronto down) antes",
                f"could not put the program in {dest} ({exc.strerror or exc}); if it is running, "
                "stop linkpronto (linkpronto down) first",
            ),
            url,
            fix,
            detail=f"{dest}: {exc}",
        ) from exc
    return dest


def mirrored(default_base_url: str, mirror: str) -> str:
    """``default_base_url`` with ``https://github.com`` replaced by ``mirror`` (when one is set)."""
    mirror = mirror.rstrip("/")
    return default_base_url.replace("https://github.com", mirror) if mirror else default_base_url
