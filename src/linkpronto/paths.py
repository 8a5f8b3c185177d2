"""Every path linkpronto owns on the public listener — the one place they are spelled.

linkpronto reserves exactly two prefixes on the public side (CONTRACT.md): ``/_linkpronto/`` and
``/.well-known/linkpronto/``. With an app configured, every other path belongs to the app.
"""

from __future__ import annotations

PREFIX = "/_linkpronto"
WELL_KNOWN = "/.well-known/linkpronto"
OWN_PREFIXES = (PREFIX + "/", WELL_KNOWN + "/")

PROBE = "/.well-known/linkpronto/probe"  # = WELL_KNOWN + "/probe", spelled whole as CONTRACT.md does
HEALTHZ = PREFIX + "/healthz"
STATIC = PREFIX + "/static"
#: The vendored livekit-client's file name (in ``node_modules/livekit-client/dist/`` and ``static/vendor/``).
LIVEKIT_BUNDLE = "livekit-client.umd.js"
#: What the patient page loads from :data:`STATIC` (the verification ladder checks each).
PATIENT_FILES = ("app.css", "patient.js", "i18n.js", "livekit.js", "vendor/" + LIVEKIT_BUNDLE)
JOIN = PREFIX + "/api/join"
DEVICE_CHECK = PREFIX + "/api/device-check"
RUNTIME_CONFIG = PREFIX + "/api/runtime-config"
#: linkpronto's own patient page; ``/c/{token}`` is a short alias only when no app is configured.
PATIENT_PAGE = PREFIX + "/c/{token}"
SHORT_PATIENT_PAGE = "/c/{token}"
#: LiveKit signalling base: the browser's LiveKit URL is ``wss://<public host>/_linkpronto/livekit``;
#: livekit-client appends ``/rtc`` (and ``/rtc/v1``, ``/rtc/validate``).
LIVEKIT = PREFIX + "/livekit"
#: The token of the probe link the verification ladder opens (never a real link's token).
PROBE_TOKEN = "linkpronto-probe"
#: LiveKit's webhooks when LiveKit cannot reach the admin listener on loopback (LiveKit Cloud, a LiveKit
#: on another host, ``linkpronto serve``): accepted only with LiveKit's signature (linkpronto.events).
LIVEKIT_WEBHOOK = PREFIX + "/api/livekit-webhook"


def is_own(path: str) -> bool:
    """True for a (normalised) path linkpronto serves itself on the public listener."""
    return path.startswith(OWN_PREFIXES) or path in (PREFIX, WELL_KNOWN)
