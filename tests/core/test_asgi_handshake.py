"""An open socket does not keep its handshake (backend/asgi.py): the headers, raw request and response bytes
are released once Daphne reports it open, while what Daphne still logs (the path) stays."""

from __future__ import annotations

from daphne.ws_protocol import WebSocketProtocol

from backend import asgi


class Request:
    path = "/ws/"
    headers = {"origin": "https://app.example"}


def test_opening_releases_the_handshake_but_keeps_the_path_for_the_logs():
    protocol = WebSocketProtocol.__new__(WebSocketProtocol)
    headers = [(b"host", b"127.0.0.1"), (b"authorization", b"secret")]
    scope = {"type": "websocket", "headers": headers}  # the application's scope shares Daphne's list
    protocol.request, protocol.clean_headers = Request(), headers
    protocol.http_headers, protocol.http_request_data = {"host": "127.0.0.1"}, b"GET /ws/ HTTP/1.1\r\n\r\n"
    protocol.http_response_data = b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    asgi.release_handshake_data(protocol)
    assert scope["headers"] == [] and protocol.clean_headers == []
    assert protocol.http_headers is None and protocol.http_request_data is None
    assert protocol.http_response_data is None
    assert protocol.request.path == "/ws/" and not hasattr(protocol.request, "headers")


def test_daphne_runs_the_release_when_a_socket_opens():
    assert getattr(WebSocketProtocol.onOpen, "quanzi_patched", False)
    assert getattr(WebSocketProtocol.serverClose, "quanzi_patched", False)
