"""Fixtures for the installer tests; the GitHub stand-in itself is in ``release_double``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from install.release_double import ReleaseServer, serve_releases


@pytest.fixture
def release_server() -> Iterator[ReleaseServer]:
    with serve_releases() as state:
        yield state
