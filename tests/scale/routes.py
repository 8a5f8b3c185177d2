"""The public routes the scale tests call (the one spelling is :mod:`linkpronto.paths`)."""

from __future__ import annotations

from linkpronto import paths

JOIN = paths.JOIN
HEALTHZ = paths.HEALTHZ
PROBE = paths.PROBE
