"""The one WebSocket (`/ws/`). Frames are documented in docs/websocket-protocol.md.

This module only speaks the protocol: parse, authenticate, dispatch to a handler, answer. Rules live in
services. Every error frame carries a code; a bad frame never closes an authenticated connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from backend.accounts.services import authenticate_access_token
from backend.core import presence
from backend.core.errors import DomainError
from backend.core.realtime import device_group, user_group

log = logging.getLogger("quanzi.ws")

# Close codes (4000-4999 are ours). Stable: phones branch on them.
CLOSE_PROTOCOL_ERROR = 4400  # the first frame was not an auth frame
CLOSE_UNAUTHENTICATED = 4401  # the token was missing, invalid or expired; refresh and reconnect
CLOSE_AUTH_TIMEOUT = 4408  # no auth frame within WS_AUTH_TIMEOUT_SECONDS
CLOSE_SESSION_REVOKED = 4403  # the device was signed out elsewhere

Handler = Callable[["QuanziSocketConsumer", dict], Awaitable[None]]


class QuanziSocketConsumer(AsyncWebsocketConsumer):
    # frame type → handler, for authenticated connections. Chat features register here.
    handlers: dict[str, Handler] = {}

    async def connect(self):
        self.user = None
        self.device = None
        self.groups_joined: list[str] = []
        await self.accept()
        self.auth_timer = asyncio.ensure_future(self._auth_deadline())

    async def _auth_deadline(self):
        await asyncio.sleep(settings.QUANZI["WS_AUTH_TIMEOUT_SECONDS"])
        if self.user is None:
            await self.send_error("AUTH_TIMEOUT", "No auth frame received in time.")
            await self.close(code=CLOSE_AUTH_TIMEOUT)

    async def disconnect(self, code):
        timer = getattr(self, "auth_timer", None)
        if timer is not None:
            timer.cancel()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "user", None) is not None:
            await database_sync_to_async(presence.socket_closed)(self.user.pk, self.channel_name)

    # --- frames out ---------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False, separators=(",", ":")))

    async def send_error(self, code: str, message: str, *, frame_id: object = None, **extra) -> None:
        frame = {"type": "error", "code": code, "message": message, **extra}
        if frame_id is not None:
            frame["id"] = frame_id
        await self.send_frame(frame)

    # --- frames in ----------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is not None:
            await self.send_error("BINARY_NOT_SUPPORTED", "Send JSON text frames.")
            return
        if len(text_data.encode()) > settings.QUANZI["WS_MAX_FRAME_BYTES"]:
            await self.send_error("FRAME_TOO_LARGE", f"Frames are limited to {settings.QUANZI['WS_MAX_FRAME_BYTES']} bytes.")
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self._reject_malformed()
            return
        frame_id = frame.get("id")
        if frame_id is not None and not isinstance(frame_id, str | int):
            await self.send_error("MALFORMED_FRAME", "`id` must be a string or an integer.")
            return
        if self.user is None:
            await self._authenticate(frame)
            return
        handler = self.handlers.get(frame["type"])
        if handler is None:
            await self.send_error("UNKNOWN_TYPE", f"Unknown frame type {frame['type'][:40]!r}.", frame_id=frame_id)
            return
        try:
            await handler(self, frame)
        except DomainError as exc:
            await self.send_error(exc.code, exc.message, frame_id=frame_id, field=exc.field)

    async def _reject_malformed(self):
        await self.send_error("MALFORMED_FRAME", 'Frames are JSON objects with a string "type".')
        if self.user is None:
            await self.close(code=CLOSE_PROTOCOL_ERROR)

    async def _authenticate(self, frame: dict) -> None:
        if frame["type"] != "auth":
            await self.send_error("AUTH_REQUIRED", 'The first frame must be {"type":"auth","token":...}.')
            await self.close(code=CLOSE_PROTOCOL_ERROR)
            return
        try:
            user, device = await database_sync_to_async(authenticate_access_token)(frame.get("token"))
        except DomainError as exc:
            await self.send_error(exc.code, exc.message, frame_id=frame.get("id"))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user, self.device = user, device
        self.auth_timer.cancel()
        for group in (user_group(user.pk), device_group(device.pk)):
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await database_sync_to_async(presence.socket_alive)(user.pk, self.channel_name)
        await self.on_authenticated()
        ok = {"type": "auth.ok", "user_id": user.pk, "heartbeat_seconds": 25}
        if frame.get("id") is not None:
            ok["id"] = frame["id"]
        await self.send_frame(ok)

    async def on_authenticated(self) -> None:
        """Hook for features that act when a socket signs in (presence, resume)."""

    # --- events from the channel layer ----------------------------------------------------------

    async def client_event(self, event):
        """Any app rings `{"type": "client.event", "frame": {...}}` on a user group to push a frame."""
        await self.send_frame(event["frame"])

    async def session_revoked(self, event):
        await self.send_error("SESSION_REVOKED", "This device was signed out.")
        await self.close(code=CLOSE_SESSION_REVOKED)


async def handle_ping(consumer: QuanziSocketConsumer, frame: dict) -> None:
    """Heartbeat: keeps presence fresh on every node."""
    await database_sync_to_async(presence.socket_alive)(consumer.user.pk, consumer.channel_name)
    pong = {"type": "pong"}
    if frame.get("id") is not None:
        pong["id"] = frame["id"]
    await consumer.send_frame(pong)


QuanziSocketConsumer.handlers["ping"] = handle_ping
