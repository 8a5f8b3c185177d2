"""Installers for the programs linkpronto supervises: ``livekit-server`` and ``cloudflared``.

``linkpronto install livekit|cloudflared [--version V]`` calls these. Each downloads the official
release for this OS and CPU, checks it against the SHA-256 its publisher released, and only then
puts the one binary into ``bin_dir``. Any failure is :class:`~linkpronto.errors.InstallFailed`.
"""

from linkpronto.install.cloudflared import install_cloudflared
from linkpronto.install.common import ProgressCallback, download, platform_triple
from linkpronto.install.livekit import install_livekit

__all__ = ["ProgressCallback", "download", "install_cloudflared", "install_livekit", "platform_triple"]
