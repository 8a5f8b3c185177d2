"""The media rung: media proven through the public URL, not guessed from configuration.

- :mod:`linkpronto.media.result` — :class:`MediaResult` and how a measured candidate pair becomes a
  reach (``same-network``, ``anywhere``, ``none``); no optional dependency.
- :mod:`linkpronto.media.probe` — the synthetic publisher and subscriber (``livekit.rtc``, the
  optional extra ``linkpronto[media]``), run as a child process so libwebrtc never shares the
  server's process (a native crash costs one run, not the stack).
- :mod:`linkpronto.media.rung` — :class:`MediaRung` (one run) and :class:`MediaKeeper` (its own
  cadence: every ``verify.media_interval``, and at once on a public URL or LiveKit change).
"""

from __future__ import annotations

#: Every probe room and probe participant starts with this: never counted as anyone in a room.
PROBE_PREFIX = "linkpronto-probe"
PROBE_IDENTITY_PREFIX = "lp-probe-"


def is_probe(room: str = "", identity: str = "") -> bool:
    """A probe room or participant (the media rung's, the patient's media check, the ladder's)."""
    return room.startswith(PROBE_PREFIX) or identity.startswith(PROBE_IDENTITY_PREFIX)
