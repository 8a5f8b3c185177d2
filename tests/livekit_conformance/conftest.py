"""One target per module and kind: the double and the real livekit-server answer the same tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.tiers import require
from livekit_conformance.harness import Target, double_target, real_target


@pytest.fixture(scope="module", params=["double", "real"], ids=["double", "v1_13_5"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "real":
        from fixtures.livekit_real import LIVEKIT_VERSION, livekit_binary
        from fixtures.netns import netns_available

        require(livekit_binary() is not None, f"livekit-server {LIVEKIT_VERSION} (scripts/dev.py setup --tests)")
        require(netns_available(), "network namespaces (root and iproute2's ip)")
        with real_target() as t:
            yield t
    else:
        with double_target() as t:
            yield t
