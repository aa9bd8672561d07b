"""CPU per socket of the reconnect storm's server path, in process (no Daphne, no network client).

    PYTHONPATH=$PWD .venv/bin/python bench/socket_open_cpu.py      (BENCH_SOCKETS, default 500)

On a scratch database with Redis (channel layer, presence) as in production: BENCH_SOCKETS users in groups of
250, each missing 5 messages. Measured with time.process_time (every thread of this process, the database
threads included; not PostgreSQL's or Redis's own CPU):
1. each read of the socket's open and resume, called directly, N times: ms per call;
2. the whole consumer path through an in-memory ASGI communicator: connect, auth, `resume` naming the group,
   `resume.done`, close: ms per socket.
Prints figures; asserts nothing about them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scratch import ScratchDatabase, use_scratch_database  # noqa: E402
from bench.servers import UNLIMITED, delete_redis_keys, redis_url  # noqa: E402

SOCKETS = int(os.environ.get("BENCH_SOCKETS", "500"))
GROUP = 250
MISSED = 5


def prepare() -> tuple[list[str], list[int], dict[int, tuple[str, int, int]]]:
    from backend.accounts.models import Device, User, phone_index
    from backend.accounts.tokens import issue_access_token
    from backend.chat import services
    from backend.chat.models import Conversation
    from backend.circles.models import Friendship
    from backend.core.ids import encode_id

    users = User.objects.bulk_create([User(phone=f"+86134{i:08d}", phone_index=phone_index(f"+86134{i:08d}"),
                                           display_name=f"c{i}", password="!") for i in range(SOCKETS)])
    devices = Device.objects.bulk_create([Device(user=u, name="bench") for u in users])
    tokens = [issue_access_token(user_id=d.user_id, device_id=d.pk, generation=d.generation)[0] for d in devices]
    group_of: dict[int, tuple[str, int, int]] = {}
    for start in range(0, len(users), GROUP):
        members = users[start:start + GROUP]
        Friendship.objects.bulk_create([Friendship(user=a, friend=b) for m in members[1:]
                                        for a, b in ((members[0], m), (m, members[0]))])
        c = services.create_group(owner=members[0], title="cpu", member_ids=[m.pk for m in members[1:]])
        before = Conversation.objects.get(pk=c.pk).last_seq
        for k in range(MISSED):
            services.send_message(conversation_id=c.pk, sender=members[0], client_msg_id=f"m{k}", text=f"away {k}")
        for m in members:
            group_of[m.pk] = (encode_id("Conversation", c.pk), c.pk, before)
    return tokens, [u.pk for u in users], group_of


def per_call(label: str, fn, args: list) -> None:
    began = time.process_time()
    for a in args:
        fn(*a)
    ms = (time.process_time() - began) * 1000 / len(args)
    print(f"  {label:<44} {ms:7.3f} ms CPU per call")


def direct(tokens: list[str], user_ids: list[int], group_of: dict) -> None:
    from backend.accounts.services import verify_access_token
    from backend.chat import consumers, selectors
    from backend.chat.services import announce_presence
    from backend.core import presence, realtime

    def realtime_deferred(fn, *args):
        with realtime.deferred_rings():
            return fn(*args)

    def announce(uid):
        realtime_deferred(lambda: announce_presence(user_id=uid, online=True))

    per_call("verify_access_token", verify_access_token, [(t,) for t in tokens])
    per_call("presence.socket_alive", presence.socket_alive, [(u, f"cpu.{u}") for u in user_ids])
    per_call("selectors.socket_heads", selectors.socket_heads, [(u,) for u in user_ids])
    per_call("announce_presence (rings deferred)", announce, [(u,) for u in user_ids])
    per_call("selectors.resume_plan", selectors.resume_plan,
             [(u, {group_of[u][1]: (group_of[u][2], None)}) for u in user_ids])
    opened = getattr(consumers, "socket_opened_reads", None)  # absent before the reads were one trip
    if opened is not None:
        per_call("consumers.socket_opened_reads (rings deferred)",
                 lambda u: realtime_deferred(opened, u, f"cpu.{u}"), [(u,) for u in user_ids])


async def through_consumer(tokens: list[str], user_ids: list[int], group_of: dict, inflight: int) -> float:
    from channels.testing import WebsocketCommunicator

    from backend.chat.consumers import QuanziSocketConsumer

    app = QuanziSocketConsumer.as_asgi()
    gate = asyncio.Semaphore(inflight)
    lost = 0

    async def one(token: str, uid: int) -> None:
        nonlocal lost
        gid, _, before = group_of[uid]
        async with gate:
            ws = WebsocketCommunicator(app, "/ws/")
            ok, _ = await ws.connect(timeout=60)
            assert ok
            await ws.send_json_to({"type": "auth", "token": token})
            while (frame := await ws.receive_json_from(timeout=60))["type"] != "auth.ok":
                assert frame["type"] != "error", frame
            await ws.send_json_to({"type": "resume", "id": "r", "conversations": {gid: before}})
            seen = set()
            while (frame := await ws.receive_json_from(timeout=60))["type"] != "resume.done":
                if frame["type"] == "message":
                    seen.add(frame["message"]["seq"])
            lost += len(set(range(before + 1, before + MISSED + 1)) - seen)
            await ws.disconnect()

    began = time.process_time()
    await asyncio.gather(*(one(t, u) for t, u in zip(tokens, user_ids, strict=True)))
    ms = (time.process_time() - began) * 1000 / len(tokens)
    print(f"  whole socket (connect, auth, resume, close), {inflight:>3} in flight {ms:7.3f} ms CPU per socket; "
          f"lost {lost}")
    return ms


def main() -> None:
    tag = f"benchcpu{os.getpid()}"
    with ScratchDatabase("socketcpu") as url:
        use_scratch_database(url)
        os.environ.update({"REDIS_URL": redis_url(), "CHANNELS_PREFIX": tag, "CACHE_PREFIX": tag, **UNLIMITED})
        try:
            import django

            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
            django.setup()
            tokens, user_ids, group_of = prepare()
            from django.db import connections

            print(f"socket open CPU: {SOCKETS} users, groups of {GROUP}, {MISSED} missed each")
            direct(tokens, user_ids, group_of)
            connections.close_all()
            for inflight in (1, 64):
                asyncio.run(through_consumer(tokens, user_ids, group_of, inflight))
            connections.close_all()
        finally:
            delete_redis_keys(redis_url(), tag)


if __name__ == "__main__":
    main()
