"""The ceiling for bench/chat.py: a bare Channels consumer on the same channel layer, no database.

`auth` joins the listed groups; `send` rings one group with the frame and acks. Not used in production.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402


class EchoConsumer(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        if content.get("type") == "auth":
            for group in content.get("groups", []):
                await self.channel_layer.group_add(group, self.channel_name)
            await self.send_json({"type": "auth.ok"})
        elif content.get("type") == "send":
            frame = {"type": "message", "message": {"client_msg_id": content["client_msg_id"], "body": content["text"]}}
            await self.channel_layer.group_send(content["group"], {"type": "relay", "frame": frame})
            await self.send_json({"type": "ack", "client_msg_id": content["client_msg_id"]})

    async def relay(self, event):
        await self.send_json(event["frame"])


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", EchoConsumer.as_asgi())])})
