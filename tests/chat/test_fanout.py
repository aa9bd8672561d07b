"""The node fan-out (backend/chat/fanout.py): a process joins a conversation group once, however many of its
sockets follow the conversation, hands each doorbell to every local follower, leaves the group when its last
follower leaves, and a socket with a full inbox loses only its own copy (its seq gap recovers it)."""

from __future__ import annotations

import asyncio

from channels.layers import InMemoryChannelLayer

from backend.chat import events, fanout


class FakeSocket:
    def __init__(self, capacity: int = 10) -> None:
        self.local_events: asyncio.Queue = asyncio.Queue(maxsize=capacity)

    def drain(self) -> list[dict]:
        out = []
        while not self.local_events.empty():
            out.append(self.local_events.get_nowait())
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
        await node.follow(ada, 7)
        await node.follow(bob, 7)
        await node.follow(cyd, 8)
        assert group_channels(layer, 7) == {node.channel} == group_channels(layer, 8)
        await layer.group_send(events.conversation_group(7), {"type": "chat.message", "conversation": 7, "seq": 1})
        await _settle(node)
        assert [e["seq"] for e in ada.drain()] == [1] and [e["seq"] for e in bob.drain()] == [1]
        assert cyd.drain() == []  # follows another conversation
        await node.unfollow(ada, 7)
        assert group_channels(layer, 7) == {node.channel}  # bob still follows
        await node.unfollow(bob, 7)
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
        await node.follow(slow, 3)
        await node.follow(fast, 3)
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
        await node.follow(sockets[0], 5)
        await asyncio.gather(*(node.unfollow(s, 5) if i % 2 == 0 else node.follow(s, 5)
                               for i, s in enumerate(sockets)))
        assert node.followers[5] == set(sockets[1::2])
        assert group_channels(layer, 5) == {node.channel}
        for task in node._tasks:
            task.cancel()

    asyncio.run(scenario())
