"""Debian's Chromium as every browser test launches it (Playwright's ``executable_path``)."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# Headless, and none of Chromium's own background traffic (component updates, sync, QUIC...).
BASE_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAKE_MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
PHONE = {"width": 390, "height": 844}
