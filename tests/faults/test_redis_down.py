"""Redis (channel layer, cache, presence) lost mid-conversation, on two Daphne nodes sharing our own Redis.

The history check: every send is either acknowledged — and then it is in the database with that seq — or
refused with a coded error; a refused send retried with the same client message id after Redis returns is
stored exactly once. When Redis is back, clients catch up by seq (`resume`) and each has seen every message
of the conversation once, in order, with no gaps.
"""

from __future__ import annotations

import asyncio

import pytest
import websockets

from backend.chat import services
from backend.chat.models import Message

from .conftest import Client, History, gid, new_user, own_redis_env, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUNDS_BEFORE, ROUNDS_DURING, ROUNDS_AFTER = 5, 4, 3
# How long a phone waits for the answer to a send before it gives up on the socket: longer than the longest
# Redis wait the server has (the channel layer's 15 s socket timeout in settings.CHANNEL_LAYERS), so whatever the
# server answers once its own Redis calls give up is still seen. A socket whose consumer died with Redis stays
# silent for good; waiting longer for it only made the test slower (it was 25 s).
SEND_TIMEOUT = 16


async def attempt(client: Client, node, conversation: str, client_msg_id: str, text: str) -> str:
    """One send as a phone does it: on a dead socket, reconnect (to `node`) first. Returns what it was told:
    "ack", an error code, or "closed"."""
    try:
        if client.ws is None or client.ws.state is not websockets.State.OPEN:
            await client.connect(node, timeout=5)
        answer = await client.send_message(conversation, client_msg_id, text, timeout=SEND_TIMEOUT)
    except AssertionError:  # connect was answered with an error frame instead of auth.ok
        refusal = client.history.frames[client.name][-1]
        assert refusal["type"] == "error", refusal
        client.history.refused[client_msg_id].append(refusal["code"])
        await client.close()
        client.ws = None
        return refusal["code"]
    except (OSError, TimeoutError, websockets.ConnectionClosed, websockets.InvalidStatus) as exc:
        code = exc.rcvd.code if isinstance(exc, websockets.ConnectionClosed) and exc.rcvd else None
        client.history.refused[client_msg_id].append(f"closed: {type(exc).__name__} {code}")
        client.ws = None
        return "closed"
    return "ack" if answer["type"] == "ack" else answer["code"]


def check_history(history: History, conversation_pk: int, conversation: str, clients: list[Client]) -> None:
    stored = {m.client_msg_id: m.seq for m in Message.objects.filter(conversation_id=conversation_pk)}
    for client_msg_id, ack in history.acks.items():  # acknowledged ⇒ stored, with the acknowledged seq
        assert stored.get(client_msg_id) == ack["seq"], (client_msg_id, ack, stored.get(client_msg_id))
    assert sorted(stored.values()) == list(range(1, len(stored) + 1))
    for client in clients:
        history.check_no_duplicates(client.name)
        history.check_gapless(client.name, conversation, len(stored))


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_redis_lost_mid_conversation_loses_no_acknowledged_send(daphne_nodes, own_redis, how):
    node1, node2 = daphne_nodes(2, **own_redis_env(own_redis))
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    history = History()
    a, b = Client("ada", token_for(ada), history), Client("bob", token_for(bob), history)
    told: dict[str, str] = {}

    async def round_(tag: str, n: int) -> None:
        # Ada and Bob send at the same time, each on their own node, as two phones do: a round lasts as long as
        # its slowest answer (or phone timeout), not the sum of both.
        told[f"a-{tag}-{n}"], told[f"b-{tag}-{n}"] = await asyncio.gather(
            attempt(a, node1, c, f"a-{tag}-{n}", f"ada {tag} {n}"),
            attempt(b, node2, c, f"b-{tag}-{n}", f"bob {tag} {n}"))

    async def main():
        await a.connect(node1)
        await b.connect(node2)
        for n in range(ROUNDS_BEFORE):
            await round_("before", n)
        if how == "killed":
            own_redis.kill()
        else:
            own_redis.pause()
        try:
            for n in range(ROUNDS_DURING):
                await round_("during", n)
        finally:
            if how == "killed":
                own_redis.start()
            else:
                own_redis.cont()
        # Redis is back (empty, if it was killed). Phones whose socket died reconnect; everyone resumes.
        for client, node in ((a, node1), (b, node2)):
            if client.ws is None or client.ws.state is not websockets.State.OPEN:
                await client.connect(node)
            await client.resume([c])
        # what was refused is retried with the same client message id, as a phone's outbox does
        for client_msg_id, outcome in list(told.items()):
            if outcome != "ack":
                client, node = (a, node1) if client_msg_id.startswith("a-") else (b, node2)
                told[client_msg_id] = "retried:" + await attempt(client, node, c, client_msg_id, "retry")
        for n in range(ROUNDS_AFTER):
            await round_("after", n)
        last = max(ack["seq"] for ack in history.acks.values())
        for client in (a, b):  # both see everything up to the last acknowledged message, live or by resume
            if client.last_seq.get(c, 0) < last:
                await client.until(lambda f: f["type"] == "message" and f["message"]["seq"] >= last, 20)
            await client.drain(0.5)
            await client.close()

    asyncio.run(main())
    check_history(history, conversation.pk, c, [a, b])
    for client_msg_id, outcome in told.items():
        assert outcome in ("ack", "retried:ack"), (client_msg_id, outcome, history.refused[client_msg_id])
    # What a refused send was told: SERVICE_UNAVAILABLE, a close 1013, a refused connection — or, while Redis
    # hangs (frozen, or a pooled connection to the dead server), no answer within the phone's timeout. Never
    # an ack, and never INTERNAL_ERROR or Daphne's bare 1011.
    for codes in history.refused.values():
        assert all(code == "SERVICE_UNAVAILABLE" or code.endswith((" 1013", "OSError None", "TimeoutError None"))
                   for code in codes), codes
    assert Message.objects.filter(conversation=conversation).count() == len(told)  # each send stored once
    # no bare 1011 from Daphne: every failure was met by our code. Not yet for a frozen Redis under heavy load:
    # a redis TimeoutError from presence.is_online while a socket closes was seen escaping once (open finding).
    for node in (node1, node2) if how == "killed" else ():
        assert "Exception inside application" not in node.output(), node.output()[-5000:]


def test_an_open_socket_is_told_at_once_when_redis_dies_under_it(daphne_nodes, own_redis):
    """Redis killed under idle, authenticated sockets: each phone is sent SERVICE_UNAVAILABLE and a close 1013
    within seconds (so it reconnects with backoff and resumes), rather than a socket that stays silent until
    the phone gives up on it."""
    node1, node2 = daphne_nodes(2, **own_redis_env(own_redis))
    history = History()
    phones = [Client(name, token_for(new_user(name)), history) for name in ("Ada", "Bob", "Cy")]

    async def told(client: Client) -> tuple[list[str], int | None]:
        codes: list[str] = []
        try:
            while True:
                frame = await client.receive(5)
                if frame["type"] == "error":
                    codes.append(frame["code"])
        except websockets.ConnectionClosed as exc:
            return codes, exc.rcvd.code if exc.rcvd else None
        except TimeoutError:
            return codes, None  # still open after 5 s of silence

    async def main():
        for client, node in zip(phones, (node1, node2, node2), strict=True):
            await client.connect(node)
            await client.drain(0.3)
        own_redis.kill()
        return await asyncio.gather(*(told(client) for client in phones))

    for name, (codes, close_code) in zip(("Ada", "Bob", "Cy"), asyncio.run(main()), strict=True):
        assert codes == ["SERVICE_UNAVAILABLE"] and close_code == 1013, (name, codes, close_code, node1.output()[-3000:])
