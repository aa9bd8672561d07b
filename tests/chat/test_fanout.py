"""The node fan-out (backend/chat/fanout.py): a process joins a conversation group once, however many of its
sockets follow the conversation, hands each doorbell to every local follower, leaves the group when its last
follower leaves, and a socket with a full inbox loses only its own copy (its seq gap recovers it)."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer

from backend.chat import events, fanout


class FakeSocket:
    def __init__(self, capacity: int = 10) -> None:
        self.capacity, self.inbox = capacity, []

    def deliver_local(self, event: dict) -> bool:
        if len(self.inbox) >= self.capacity:
            return False
        self.inbox.append(event)
        return True

    def drain(self) -> list[dict]:
        out, self.inbox = self.inbox, []
        return out


def group_channels(layer: InMemoryChannelLayer, conversation: int) -> set[str]:
    return set(layer.groups.get(events.conversation_group(conversation), {}))


async def _settle(node: fanout.NodeFanout) -> None:
    for _ in range(20):  # let the node's reader hand out what the layer delivered
        await asyncio.sleep(0.01)


def test_a_node_joins_once_and_every_local_follower_hears_each_doorbell_once():
    async def scenario():
        layer = InMemoryChannelLayer()
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        ada, bob, cyd = FakeSocket(), FakeSocket(), FakeSocket()
        await node.follow(ada, events.conversation_group(7))
        await node.follow(bob, events.conversation_group(7))
        await node.follow(cyd, events.conversation_group(8))
        assert group_channels(layer, 7) == {node.channel} == group_channels(layer, 8)
        await layer.group_send(events.conversation_group(7), {"type": "chat.message", "conversation": 7, "seq": 1})
        await _settle(node)
        assert [e["seq"] for e in ada.drain()] == [1] and [e["seq"] for e in bob.drain()] == [1]
        assert cyd.drain() == []  # follows another conversation
        await node.unfollow(ada, events.conversation_group(7))
        assert group_channels(layer, 7) == {node.channel}  # bob still follows
        await node.unfollow(bob, events.conversation_group(7))
        assert group_channels(layer, 7) == set()  # the last local follower took the node out
        await layer.group_send(events.conversation_group(7), {"type": "chat.message", "conversation": 7, "seq": 2})
        await _settle(node)
        assert ada.drain() == [] and bob.drain() == []
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())


def test_a_full_inbox_drops_only_that_sockets_copy():
    async def scenario():
        layer = InMemoryChannelLayer()
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        slow, fast = FakeSocket(capacity=1), FakeSocket()
        await node.follow(slow, events.conversation_group(3))
        await node.follow(fast, events.conversation_group(3))
        for seq in (1, 2, 3):
            await layer.group_send(events.conversation_group(3), {"type": "chat.message", "conversation": 3,
                                                                  "seq": seq})
        await _settle(node)
        assert [e["seq"] for e in fast.drain()] == [1, 2, 3]
        assert [e["seq"] for e in slow.drain()] == [1]  # 2 and 3 come back through the seq gap
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())


def test_following_and_leaving_at_once_leaves_the_node_in_the_group_while_anyone_follows():
    async def scenario():
        layer = InMemoryChannelLayer()
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        sockets = [FakeSocket() for _ in range(20)]
        await node.follow(sockets[0], events.conversation_group(5))
        group = events.conversation_group(5)
        await asyncio.gather(*(node.unfollow(s, group) if i % 2 == 0 else node.follow(s, group)
                               for i, s in enumerate(sockets)))
        assert node.followers[events.conversation_group(5)] == set(sockets[1::2])
        assert group_channels(layer, 5) == {node.channel}
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())


def test_user_and_device_doorbells_reach_only_the_sockets_following_that_group():
    """Sockets have no channel of their own: the node follows their user and device groups and routes each
    doorbell by the group it was rung on (core.realtime puts it in `group`). One ring to two users whose
    sockets share the node reaches each user's sockets once."""
    from backend.core import realtime

    async def scenario():
        layer = InMemoryChannelLayer()
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        ada_phone, ada_tablet, bob = FakeSocket(), FakeSocket(), FakeSocket()
        for socket, groups in ((ada_phone, ("user.1", "device.10")), (ada_tablet, ("user.1", "device.11")),
                               (bob, ("user.2", "device.20"))):
            for group in groups:
                await node.follow(socket, group)
        assert set(layer.groups["user.1"]) == {node.channel}  # joined once for both of Ada's sockets
        await realtime._send_all(layer, [("user.1", {"type": "client.event", "frame": {"n": 1}}),
                                         ("user.2", {"type": "client.event", "frame": {"n": 1}}),
                                         ("device.11", {"type": "session.revoked"})])
        await _settle(node)
        assert [e["type"] for e in ada_phone.drain()] == ["client.event"]
        assert [e["type"] for e in ada_tablet.drain()] == ["client.event", "session.revoked"]
        assert [(e["type"], e["group"]) for e in bob.drain()] == [("client.event", "user.2")]
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())


def test_a_closing_socket_is_forgotten_at_once_and_the_node_leaves_groups_nobody_follows():
    async def scenario():
        layer = InMemoryChannelLayer()
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        ada, bob = FakeSocket(), FakeSocket()
        for socket, user in ((ada, "user.1"), (bob, "user.2")):
            await node.follow(socket, user)
            await node.follow(socket, events.conversation_group(9))
        emptied = node.drop(ada, ["user.1", events.conversation_group(9)])  # no await: nothing can cut it short
        assert emptied == ["user.1"]
        await realtime_send(layer, [(events.conversation_group(9), {"type": "chat.message", "conversation": 9})])
        await _settle(node)
        assert ada.drain() == [] and len(bob.drain()) == 1
        await node.leave_unfollowed("user.1")
        assert "user.1" not in layer.groups and set(layer.groups[events.conversation_group(9)]) == {node.channel}
        ada.released = True
        await node.follow(ada, "user.1")  # a follow that was waiting when the socket closed adds nothing
        assert "user.1" not in node.followers
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())


def test_a_doorbell_the_node_cannot_read_is_dropped_and_the_reader_goes_on():
    async def scenario():
        layer = InMemoryChannelLayer()
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        ada = FakeSocket()
        real_receive, calls = layer.receive, []

        async def receive(channel):
            calls.append(channel)
            if len(calls) == 1:
                raise ValueError("InvalidToken: past the encryption TTL")
            return await real_receive(channel)

        layer.receive = receive
        await node.follow(ada, "user.1")
        await _settle(node)
        assert len(calls) == 2  # the failed read, then the next one
        await realtime_send(layer, [("user.1", {"type": "client.event", "frame": {}})])
        await _settle(node)
        assert [e["type"] for e in ada.drain()] == ["client.event"]  # no node.unavailable: Redis was fine
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())


async def realtime_send(layer, rings):
    from backend.core import realtime

    await realtime._send_all(layer, rings)


def test_on_redis_the_node_takes_many_doorbells_per_call_in_order_and_drops_one_it_cannot_read(require_redis):
    """channels-redis: the node's plain channel is read in batches (`realtime.receive_many`); the doorbells of
    a batch reach the followers in the order they were rung, and a doorbell that cannot be decrypted (here:
    garbage in the inbox) is dropped without stopping the rest."""
    import time
    import uuid

    import redis
    from channels_redis.core import RedisChannelLayer

    from backend import settings as project_settings
    from backend.core import realtime

    config = dict(project_settings.CHANNEL_LAYERS["default"]["CONFIG"], prefix=f"test-node-{uuid.uuid4().hex[:8]}")

    async def scenario():
        layer = RedisChannelLayer(**config)
        node = fanout.NodeFanout(layer, asyncio.get_running_loop())
        ada, bob = FakeSocket(capacity=100), FakeSocket(capacity=100)
        await node.follow(ada, "user.1")
        await node.follow(bob, "user.2")
        for task in node._tasks:  # stop the reader: everything below waits in the inbox
            task.cancel()
        await asyncio.sleep(0.05)
        raw = redis.Redis.from_url(project_settings.REDIS_URL)
        raw.zadd(layer.prefix + node.channel, {b"not a doorbell": time.time()})  # first in line
        rings = [(f"user.{1 + n % 2}", {"type": "client.event", "n": n}) for n in range(40)]
        await realtime._send_all(layer, rings)
        found = await realtime.receive_many(layer, node.channel)
        assert [e["n"] for e in found] == list(range(40))  # one call took them all; the garbage was dropped
        for event in found:
            node.hand_out(event)
        assert [e["n"] for e in ada.drain()] == list(range(0, 40, 2))
        assert [e["n"] for e in bob.drain()] == list(range(1, 40, 2))
        assert all("__asgi_channel__" not in e for e in found)
        raw.delete(layer.prefix + node.channel, *(k for k in raw.scan_iter(f"{layer.prefix}*")))
        await layer.flush()

    asyncio.run(scenario())
