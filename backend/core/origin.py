"""WebSocket origin check.

Native apps send no Origin header and are allowed (their first frame must still carry a valid token).
A browser always sends one: it must be listed in settings.WS_ALLOWED_ORIGINS, which blocks cross-site
WebSocket hijacking from pages the user happens to visit.
"""

from __future__ import annotations

from channels.security.websocket import WebsocketDenier
from django.conf import settings


class NativeOrAllowedOriginValidator:
    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                origin = value.decode("latin1")
                break
        if origin is not None and origin not in settings.WS_ALLOWED_ORIGINS:
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
