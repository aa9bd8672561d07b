"""ASGI entry point for Daphne: HTTP (GraphQL, admin) and the one WebSocket at /ws/."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from backend.chat.consumers import QuanziSocketConsumer  # noqa: E402
from backend.core.origin import NativeOrAllowedOriginValidator  # noqa: E402


async def refuse_socket(scope, receive, send):
    """A WebSocket to any other path (`/ws` without the slash, `/socket/`): refuse the handshake. Daphne
    answers HTTP 403 (it has no other refusal) and nothing is logged as an error; without this route the
    router raised "No route found" and Daphne answered 500 with a traceback in the log."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1000})


if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_http = ASGIStaticFilesHandler(django_http)

application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": NativeOrAllowedOriginValidator(URLRouter([
            path("ws/", QuanziSocketConsumer.as_asgi()),
            re_path(r"", refuse_socket),
        ])),
    }
)
