"""A stub of Google's OAuth token endpoint and the FCM HTTP v1 send endpoint, on loopback.

The real firebase-admin library talks to it over HTTP: it signs a JWT with the service account's key and
trades it for an access token at `token_uri` (the stub verifies the signature), then POSTs each message to
`/v1/projects/<project>/messages:send` with that bearer token. Replies can be scripted per token or fid
with the error bodies FCM really returns; anything unscripted succeeds.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict = field(default_factory=dict)


def fcm_error(status: int, rpc_status: str, message: str, fcm_code: str | None = None, *, extra_details=(),
              headers: dict | None = None) -> Reply:
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": fcm_code}] if fcm_code else []
    details.extend(extra_details)
    body = {"error": {"code": status, "message": message, "status": rpc_status, "details": details}}
    return Reply(status, body, headers or {})


def unregistered() -> Reply:
    return fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")


def sender_id_mismatch() -> Reply:
    return fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")


def invalid_token() -> Reply:
    return fcm_error(
        400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT",
        extra_details=[{"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}]}],
    )


def bad_payload() -> Reply:
    return fcm_error(
        400, "INVALID_ARGUMENT", "Invalid value at 'message.android.ttl'", "INVALID_ARGUMENT",
        extra_details=[{"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": "message.android.ttl", "description": "Invalid value"}]}],
    )


def quota_exceeded(retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED", headers=headers)


def unavailable(retry_after: str | None = None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE", headers=headers)


def internal() -> Reply:
    return fcm_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL")


class StubFcm:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.public_key_pem: bytes | None = None
        self.access_token = "stub-" + secrets.token_hex(8)
        self.reset()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/token":
                    stub._token(self, raw)
                elif self.path.startswith("/v1/projects/") and self.path.endswith("/messages:send"):
                    stub._send(self, raw)
                else:
                    stub._reply(self, Reply(404, {"error": {"code": 404, "message": "no such path"}}))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def token_uri(self) -> str:
        return self.base_url + "/token"

    def reset(self) -> None:
        with self.lock:
            self.requests: list[dict] = []  # every send request: {"path", "headers", "message"}
            self.scripted: dict[str, list[Reply]] = {}
            self.token_requests = 0
            self.delay = 0.0

    def script(self, target: str, *replies: Reply) -> None:
        """The next sends to this token or fid get these replies, in order; then success."""
        with self.lock:
            self.scripted.setdefault(target, []).extend(replies)

    @property
    def messages(self) -> list[dict]:
        with self.lock:
            return [r["message"] for r in self.requests if r["status"] == 200]

    def delivered_to(self, target: str) -> list[dict]:
        return [m for m in self.messages if target in (m.get("token"), m.get("fid"))]

    def attempts_to(self, target: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if target in (r["message"].get("token"), r["message"].get("fid")))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- handlers ---------------------------------------------------------------------------------

    def _reply(self, handler, reply: Reply) -> None:
        out = json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(out)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(out)

    def _token(self, handler, raw: bytes) -> None:
        from urllib.parse import parse_qs

        form = parse_qs(raw.decode())
        try:
            assertion = form["assertion"][0]
            # google-auth always signs for Google's token endpoint, whatever token_uri it posts to.
            claims = jwt.decode(assertion, self.public_key_pem, algorithms=["RS256"], audience=GOOGLE_TOKEN_AUDIENCE)
            if "https://www.googleapis.com/auth/firebase" not in claims.get("scope", "").split():
                raise ValueError("the assertion does not ask for the Firebase scope")
        except Exception as exc:  # a forged or malformed assertion gets what Google would answer
            self._reply(handler, Reply(400, {"error": "invalid_grant", "error_description": str(exc)}))
            return
        with self.lock:
            self.token_requests += 1
        self._reply(handler, Reply(200, {"access_token": self.access_token, "expires_in": 3600,
                                         "token_type": "Bearer"}))

    def _send(self, handler, raw: bytes) -> None:
        if handler.headers.get("Authorization") != f"Bearer {self.access_token}":
            self._reply(handler, fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."))
            return
        message = json.loads(raw)["message"]
        target = message.get("token") or message.get("fid") or ""
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            queue = self.scripted.get(target) or []
            reply = queue.pop(0) if queue else None
            if reply is None:
                reply = Reply(200, {"name": f"projects/stub/messages/{len(self.requests) + 1}"})
            self.requests.append({"path": handler.path, "headers": dict(handler.headers), "message": message,
                                  "status": reply.status})
        self._reply(handler, reply)
