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

# Close codes RFC 6455 leaves to servers (IANA: 1012 Service Restart, 1013 Try Again Later, 1014 Bad Gateway)
# that autobahn, under Daphne, refuses from an application: its sendClose takes only 1000 and 3000-4999 and
# raises on anything else, so the consumer's close 1013 (Redis lost under the socket) never left and the socket
# stayed open and silent until the phone gave up on it. These go out through autobahn's unchecked frame writer.
SERVER_CLOSE_CODES = frozenset({1012, 1013, 1014})


def _allow_server_close_codes() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not served by Daphne
        return
    if getattr(WebSocketProtocol.serverClose, "quanzi_server_codes", False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self, code=None):
        if code in SERVER_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code=code)

    server_close.quanzi_server_codes = True
    WebSocketProtocol.serverClose = server_close


_allow_server_close_codes()


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
