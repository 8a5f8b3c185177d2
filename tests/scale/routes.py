"""The public routes the scale tests call, from :mod:`linkpronto.paths`.

Until this branch merges the ``app`` branch (which moves the public routes under ``/_linkpronto``),
the running code still serves the 0.1.0 paths; this picks whichever the code in the tree serves.
"""

from __future__ import annotations

from pathlib import Path

from linkpronto import paths
from linkpronto.web import public as _public

MOVED = "paths.JOIN" in Path(_public.__file__).read_text("utf-8")
JOIN = paths.JOIN if MOVED else "/api/public/join"
HEALTHZ = paths.HEALTHZ if MOVED else "/healthz"
PROBE = paths.PROBE
