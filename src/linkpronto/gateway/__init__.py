"""The public listener's proxies: LiveKit signalling (:class:`RtcProxy`) and the user's app
(:class:`AppProxy`). Both are raw ASGI apps the public web app mounts; both read their upstream
through a callable on every request, so restarts and address changes need no re-wiring.
"""

from linkpronto.gateway.app_proxy import AppProxy
from linkpronto.gateway.rtc import RTC_PATHS, RtcProxy

__all__ = ["RTC_PATHS", "AppProxy", "RtcProxy"]
