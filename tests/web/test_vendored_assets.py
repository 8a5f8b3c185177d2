"""The livekit-client bundle is part of the package (issue 9, point 9): committed, pinned, complete."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from linkpronto import paths
from linkpronto.web import assets

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_is_vendored_with_its_version_and_licence() -> None:
    vendor = assets.VENDOR_DIR
    bundle = vendor / paths.LIVEKIT_BUNDLE
    assert assets.vendor_ready() and bundle.stat().st_size > 100_000
    assert b"LivekitClient" in bundle.read_bytes()[:2000]  # the UMD build defining the global
    assert (vendor / "livekit-client.LICENSE.txt").is_file()
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]["livekit-client"].lstrip("^~")
    assert (vendor / assets.VERSION_FILE).read_text().strip() == pinned


@pytest.mark.slow  # runs git
def test_bundle_is_committed_so_a_clean_checkout_carries_it() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", f"src/linkpronto/web/static/vendor/{paths.LIVEKIT_BUNDLE}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert tracked.returncode == 0, tracked.stderr
    for name in paths.PATIENT_FILES:
        assert (assets.STATIC_DIR / name).is_file(), name
