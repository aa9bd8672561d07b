"""Chat end to end against real Daphne processes sharing the database and Redis.

Users and tokens are created in the test database directly (the login flow has its own e2e test)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from django.conf import settings

from backend.chat import services
from backend.chat.models import Message
from tests.chat.conftest import _chat_alone, gid, new_user, token_for  # noqa: F401  (chat alone: no social policy)
from tests.e2e.test_foundation_e2e import post_graphql
from tests.frames import validate_frame

pytestmark = pytest.mark.django_db(transaction=True)

SKIP = ("presence", "typing", "read")


def start(daphne_nodes, count: int):
    return daphne_nodes(count)


class Client:
    """A phone: one socket, frames in order, presence chatter skipped."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def connect(cls, node, token: str) -> Client:
        ws = await websockets.connect(node.ws, max_queue=None)
        await ws.send(json.dumps({"type": "auth", "token": token}))
        client = cls(ws)
        ok = await client.receive(10)
        assert ok["type"] == "auth.ok", ok
        return client

    async def receive(self, timeout: float) -> dict:
        """The next frame from the real Daphne, checked against its schema in docs/websocket-protocol.md."""
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        validate_frame(frame)
        return frame

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, timeout: float = 10) -> dict:
        while True:
            frame = await self.receive(timeout)
            if frame["type"] not in SKIP:
                return frame

    async def messages(self, count: int, timeout: float = 15) -> list[dict]:
        out = []
        while len(out) < count:
            frame = await self.next(timeout)
            assert frame["type"] == "message", frame
            out.append(frame["message"])
        return out

    async def silent(self, seconds: float = 0.5) -> bool:
        try:
            while True:
                frame = await self.receive(seconds)
                if frame["type"] not in SKIP:
                    raise AssertionError(f"unexpected frame {frame}")
        except TimeoutError:
            return True

    async def close(self) -> None:
        await self.ws.close()


def test_a_on_node_1_and_b_on_node_2_chat(daphne_nodes, require_redis):
    node1, node2 = start(daphne_nodes, 2)
    ada, bob, eve = new_user("Ada"), new_user("Bob"), new_user("Eve")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    ta, tb, te = token_for(ada), token_for(bob), token_for(eve)

    async def chat():
        a, b, e = await Client.connect(node1, ta), await Client.connect(node2, tb), await Client.connect(node2, te)
        await a.send({"type": "send", "id": 1, "conversation_id": c, "client_msg_id": "a-1", "text": "在吗?"})
        assert (await a.next())["seq"] == 1
        (got,) = await b.messages(1)
        assert got["body"] == "在吗?" and got["sender_id"] == gid("User", ada.pk)
        await b.send({"type": "send", "id": 2, "conversation_id": c, "client_msg_id": "b-1", "text": "在"})
        assert (await b.next())["type"] == "ack"
        assert [m["body"] for m in await a.messages(2)] == ["在吗?", "在"]
        # a resend (same client message id, e.g. after a flaky network) yields one message
        await a.send({"type": "send", "id": 3, "conversation_id": c, "client_msg_id": "a-1", "text": "在吗?"})
        again = await a.next()
        assert again["type"] == "ack" and again["seq"] == 1 and again["duplicate"] is True
        assert [m["seq"] for m in await b.messages(1)] == [2]  # b's own message, then nothing more
        assert await b.silent()
        # Eve is not a member: nothing reaches her, and she learns nothing
        assert await e.silent(0.2)
        await e.send({"type": "send", "id": 4, "conversation_id": c, "client_msg_id": "e-1", "text": "hi"})
        assert (await e.next())["code"] == "NOT_FOUND"
        await e.send({"type": "resume", "id": 5, "conversations": {c: 0}})
        done = await e.next()
        assert done.pop("added_cursor")  # the cursor for the next resume's added_after
        assert done == {"type": "resume.done", "id": 5, "conversations": {}, "not_found": [c]}
        for client in (a, b, e):
            await client.close()

    asyncio.run(chat())
    assert Message.objects.filter(conversation=conversation).count() == 2
    history = post_graphql(node2, "query($c: ID!) { messages(conversationId: $c) { edges { node { seq } } } }",
                           {"c": c}, token=te)
    assert history["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_a_group_of_50_sockets_receives_every_message_in_order(daphne_nodes, require_redis):
    nodes = start(daphne_nodes, 2)
    members = [new_user(f"m{i}") for i in range(50)]
    group = services.create_group(owner=members[0], title="Fifty", member_ids=[u.pk for u in members[1:]])
    c = gid("Conversation", group.pk)
    tokens = [token_for(u) for u in members]
    senders, per_sender = 3, 8

    async def run():
        clients = await asyncio.gather(*(Client.connect(nodes[i % 2], t) for i, t in enumerate(tokens)))

        async def talk(index: int):
            for n in range(per_sender):
                await clients[index].send({"type": "send", "conversation_id": c, "client_msg_id": f"{index}-{n}",
                                           "text": f"{index}:{n}"})

        await asyncio.gather(*(talk(i) for i in range(senders)))

        async def collect(i: int, client: Client) -> list[dict]:
            out = []
            while len(out) < senders * per_sender:
                frame = await client.next(timeout=20)
                if frame["type"] == "message":
                    out.append(frame["message"])
                else:
                    assert i < senders and frame["type"] == "ack", frame
            return out

        received = await asyncio.gather(*(collect(i, cl) for i, cl in enumerate(clients)))
        quiet = await asyncio.gather(*(cl.silent(0.3) for cl in clients))
        await asyncio.gather(*(cl.close() for cl in clients))
        return received, quiet

    received, quiet = asyncio.run(run())
    expected = list(range(2, 2 + senders * per_sender))  # seq 1 is "m0 created the group"
    for stream in received:
        assert [m["seq"] for m in stream] == expected  # every message, in seq order, once
    assert all(quiet)
    assert sorted(m["body"] for m in received[0]) == sorted(f"{i}:{n}" for i in range(senders)
                                                           for n in range(per_sender))


def test_a_client_that_misses_30_messages_resumes_with_exactly_those(daphne_nodes):
    nodes = start(daphne_nodes, 2 if settings.REDIS_URL else 1)
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    ta, tb = token_for(ada), token_for(bob)

    async def run():
        a = await Client.connect(nodes[0], ta)
        b = await Client.connect(nodes[-1], tb)
        await a.send({"type": "send", "conversation_id": c, "client_msg_id": "first", "text": "first"})
        (first,) = await b.messages(1)
        await b.close()  # bob goes into a tunnel
        for n in range(30):
            await a.send({"type": "send", "id": n, "conversation_id": c, "client_msg_id": f"t{n}", "text": f"#{n}"})
        acks = []
        while len(acks) < 31:
            frame = await a.next()
            if frame["type"] == "ack":
                acks.append(frame["seq"])
        assert acks == list(range(1, 32))
        b = await Client.connect(nodes[0], tb)  # back, on the other node
        await b.send({"type": "resume", "id": "r", "conversations": {c: first["seq"]}})
        missed = await b.messages(30)
        done = await b.next()
        assert done.pop("added_cursor")
        assert done == {"type": "resume.done", "id": "r", "conversations": {c: {"last_seq": 31, "last_change": 0}},
                        "not_found": []}
        assert await b.silent()
        # and live delivery continues from there
        await a.send({"type": "send", "conversation_id": c, "client_msg_id": "after", "text": "welcome back"})
        (live,) = await b.messages(1)
        await a.close()
        await b.close()
        return missed, live

    missed, live = asyncio.run(run())
    assert [m["seq"] for m in missed] == list(range(2, 32))
    assert [m["body"] for m in missed] == [f"#{n}" for n in range(30)]
    assert live["seq"] == 32
