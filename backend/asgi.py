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


def _patch_daphne_socket(name: str, make_replacement) -> None:
    """Replace Daphne's `WebSocketProtocol.<name>` with `make_replacement(original)`, once per process (this
    module may be imported again, e.g. by tests); nothing when Daphne is not installed (another server)."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not served by Daphne
        return
    original = getattr(WebSocketProtocol, name)
    if getattr(original, "quanzi_patched", False):
        return
    replacement = make_replacement(original)
    replacement.quanzi_patched = True
    setattr(WebSocketProtocol, name, replacement)


def _server_close_with_server_codes(original):
    def server_close(self, code=None):
        if code in SERVER_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code=code)

    return server_close


_patch_daphne_socket("serverClose", _server_close_with_server_codes)

# Handshake data autobahn and Daphne keep for a socket's whole life, read by nobody once it is open: the parsed
# request headers (three copies: autobahn's dict, its raw bytes, Daphne's list in the ASGI scope), the response
# bytes, the request object (Daphne's logs only read its path). About 2 KB of every idle socket's ~30
# (bench/reconnect.py, issue 15). Origin and client IP were read from the scope at connect, before this runs.
HANDSHAKE_ATTRIBUTES = ("http_headers", "http_request_data", "http_response_data", "http_status_line",
                        "http_request_uri", "http_request_params", "http_request_host")


class _OpenedRequest:
    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def release_handshake_data(protocol) -> None:
    """What an open socket no longer needs from its handshake. The headers list is shared with the scope
    the application holds, so it is emptied in place."""
    request = getattr(protocol, "request", None)
    if request is not None and not isinstance(request, _OpenedRequest):
        protocol.request = _OpenedRequest(request.path)
    for name in HANDSHAKE_ATTRIBUTES:
        if hasattr(protocol, name):
            setattr(protocol, name, None)
    headers = getattr(protocol, "clean_headers", None)
    if isinstance(headers, list):
        headers.clear()


def _open_then_release_handshake(original):
    def on_open(self):
        original(self)
        release_handshake_data(self)

    return on_open


_patch_daphne_socket("onOpen", _open_then_release_handshake)


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


def _freeze_what_start_up_built() -> None:
    """Move everything start-up allocated (Django, the URL conf and the GraphQL schema they load, the apps'
    modules) out of the garbage collector's sight: a full collection otherwise walked all of it, pausing the
    event loop long enough to make the chat bench's open-loop p99 swing between 20 and 170 ms from run to run
    (with collection off: 17–23 ms). Objects made later are collected as before."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the URL conf, and with it the GraphQL schema
    gc.collect()
    gc.freeze()


_freeze_what_start_up_built()

