"""A Daphne node SIGKILLed while clients are connected to it.

Two nodes share our own Redis. Phones on the killed node reconnect to the other one and resume: each has seen
every message once, in order, no gaps — including those sent while it was away. The dead node cannot clear
its sockets' presence, so presence entries carry an expiry (core.presence.PRESENCE_TTL_SECONDS, refreshed by
every ping): a user whose only socket was on the dead node shows offline once it passes. The nodes here run with
a short expiry (PRESENCE_TTL_SECONDS from the environment) so that the test need not wait out production's 60 s:
what is checked is that the entry ages out, not how long that takes.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.chat import services

from .conftest import Client, History, gid, new_user, own_redis_env, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The nodes' presence expiry: well above the time between Cyd's last ping and the check that she is online,
# well below production's 60 s. She must show offline within 1.5 × this of her last ping: later than that (the
# presence key's own Redis expiry, 2 × TTL, is what cleared it, or nothing did) fails, as the 60 s original's
# 80 s bound did.
PRESENCE_TTL_SECONDS = 10
CLEARED_WITHIN = PRESENCE_TTL_SECONDS * 1.5


def test_clients_of_a_killed_node_resume_on_the_other_and_its_presence_clears(daphne_nodes, own_redis):
    node1, node2 = daphne_nodes(2, **own_redis_env(own_redis, PRESENCE_TTL_SECONDS=str(PRESENCE_TTL_SECONDS)))
    ada, bob, cyd = new_user("Ada"), new_user("Bob"), new_user("Cyd")
    group = services.create_group(owner=bob, title="Three", member_ids=[ada.pk, cyd.pk])
    c = gid("Conversation", group.pk)
    history = History()
    a, b, y = (Client(name, token_for(u), history) for name, u in (("ada", ada), ("bob", bob), ("cyd", cyd)))
    cyd_gid = gid("User", cyd.pk)

    async def cyd_online() -> bool:
        await b.send({"type": "presence.query", "id": "pq", "user_ids": [cyd_gid]})
        (state,) = [f for f in await b.until(lambda f: f["type"] == "presence.state") if f["type"] == "presence.state"]
        return state["users"][0]["online"]

    async def main() -> tuple[int, float | None]:
        await a.connect(node1)
        await y.connect(node1)
        await b.connect(node2)
        for client in (a, b, y):  # the system message of the group's creation, and a baseline
            await client.resume([c])
        for n in range(5):
            assert (await a.send_message(c, f"a-{n}", f"ada {n}"))["type"] == "ack"
            assert (await b.send_message(c, f"b-{n}", f"bob {n}"))["type"] == "ack"
        await y.send({"type": "ping", "id": "last-ping"})  # Cyd's last heartbeat: her entry expires a TTL later
        await y.until(lambda f: f["type"] == "pong")
        last_ping_answered = time.monotonic()
        assert await cyd_online()
        node1.process.kill()  # SIGKILL: no close frames, no cleanup, no presence cleared
        node1.process.wait(10)
        for n in range(5, 8):  # the conversation goes on while Ada's phone is reconnecting
            assert (await b.send_message(c, f"b-{n}", f"bob {n}"))["type"] == "ack"
        await a.connect(node2)
        await a.resume([c])
        for n in range(8, 10):
            assert (await a.send_message(c, f"a-{n}", f"ada {n}"))["type"] == "ack"
            assert (await b.send_message(c, f"b-{n}", f"bob {n}"))["type"] == "ack"
        last = max(ack["seq"] for ack in history.acks.values())
        for client in (a, b):
            if client.last_seq.get(c, 0) < last:
                await client.until(lambda f: f["type"] == "message" and f["message"]["seq"] >= last, 20)
        # Cyd never came back: she shows online until her entry's expiry passes, then offline
        cleared_after = None
        while True:  # asked at least once, however long the conversation above took
            await b.send({"type": "ping", "id": "keepalive"})
            if not await cyd_online():
                cleared_after = time.monotonic() - last_ping_answered
                break
            if time.monotonic() - last_ping_answered >= CLEARED_WITHIN:
                break
            await asyncio.sleep(0.5)
        await a.drain(0.3)
        await b.drain(0.3)
        for client in (a, b):
            await client.close()
        return last, cleared_after

    last, cleared_after = asyncio.run(main())
    assert cleared_after is not None, f"Cyd still shows online {CLEARED_WITHIN} s after her last ping (node dead)"
    for name in ("ada", "bob"):
        history.check_no_duplicates(name)
        history.check_gapless(name, c, last)
    stored = dict(group.messages.values_list("client_msg_id", "seq"))
    for client_msg_id, ack in history.acks.items():  # acknowledged ⇒ stored with that seq
        assert stored[client_msg_id] == ack["seq"]
    assert "Traceback" not in node2.output(), node2.output()[-4000:]
