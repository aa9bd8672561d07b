"""A second ceiling for bench/chat.py: the echo consumer on the chat's own transport, no database.

bench/echo_asgi.py rings through channels-redis's `group_send` to a channel per socket, a path the chat no
longer takes (it rings through `core.realtime` to one channel per process, `backend.chat.fanout`), and it
accepts faster than it delivers: in a 1:1 run it drops about half of what it accepts (channels-redis's
per-channel capacity). This one does what the chat does around its database work: `auth` makes the process
follow the listed groups (`NodeFanout.follow`), `send` rings the group with the frame (`realtime`'s batched
ring, as a chat send's after-commit doorbells) and acks; the node's reader hands the doorbell to the
following sockets, which send the frame. So chat / this echo is the cost of the send service itself.
Not used in production.
"""

import asyncio
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

import django  # noqa: E402

django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from backend.chat import fanout  # noqa: E402
from backend.core import realtime  # noqa: E402


class FanoutEchoConsumer(AsyncJsonWebsocketConsumer):
    groups_followed: list[str] = []

    def deliver_local(self, event: dict) -> bool:
        self.doorbells.put_nowait(event)
        return True

    async def _relay(self) -> None:
        while True:
            event = await self.doorbells.get()
            if event.get("type") == "relay":
                await self.send_json(event["frame"])

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "auth":
            self.doorbells: asyncio.Queue = asyncio.Queue()
            self.relay = asyncio.ensure_future(self._relay())
            node = fanout.node_fanout(self.channel_layer)
            await node.start()
            self.groups_followed = list(content.get("groups", []))
            for group in self.groups_followed:
                await node.follow(self, group)
            await self.send_json({"type": "auth.ok"})
        elif content.get("type") == "send":
            frame = {"type": "message", "message": {"client_msg_id": content["client_msg_id"], "body": content["text"]}}
            await realtime.send_deferred([[(content["group"], {"type": "relay", "frame": frame})]])
            await self.send_json({"type": "ack", "client_msg_id": content["client_msg_id"]})

    async def disconnect(self, code):
        if self.groups_followed:
            node = fanout.node_fanout(self.channel_layer)
            for group in node.drop(self, self.groups_followed):
                await node.leave_unfollowed(group)
        relay = getattr(self, "relay", None)
        if relay is not None:
            relay.cancel()


application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", FanoutEchoConsumer.as_asgi())])})
