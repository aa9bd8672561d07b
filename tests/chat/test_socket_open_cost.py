"""What a reconnect storm pays per socket (issue 15): the socket's session check, its baseline and its resume
are a fixed handful of statements compiled once per process, in two database-thread trips to auth.ok; the
compiled reads return exactly what the querysets they were written as return (scoped to the user), the session
is still refused when revoked, expired or disabled, and sockets waiting for their turn to authenticate are not
timed out for the wait."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from backend.accounts.models import Device
from backend.accounts.services import SessionEnded, check_session, verify_access_token
from backend.accounts.tokens import TokenExpired, TokenInvalid, issue_access_token
from backend.asgi import application
from backend.chat import consumers, selectors, services
from backend.chat.models import Membership, Message
from backend.core import clock, realtime
from backend.core.errors import DomainError

from .conftest import gid, new_user, token_for


def statements(fn) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        result = fn()
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")
    return result, [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(control)]


def send(conversation, sender, n: int, prefix: str = "m") -> None:
    for i in range(n):
        services.send_message(conversation_id=conversation.pk, sender=sender, client_msg_id=f"{prefix}{conversation.pk}-{i}",
                              text=f"{prefix} {i}")


# --- statements ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_socket_open_reads_are_three_statements(users):
    ada, bob, cyd, _ = users
    token = token_for(ada)
    services.create_group(owner=ada, title="g", member_ids=[bob.pk, cyd.pk])
    verify_access_token(token), consumers.socket_opened_reads(ada.pk, "warm-up")  # compiled on first use
    grant, verify = statements(lambda: verify_access_token(token))
    assert grant.user.pk == ada.pk and len(verify) == 1  # the device with its user, one statement
    with realtime.deferred_rings():
        heads, opened = statements(lambda: consumers.socket_opened_reads(ada.pk, "socket-1"))
    assert len(heads) == 1 and len(opened) == 2  # the baseline, the presence audience


@pytest.mark.django_db
def test_a_resume_costs_one_statement_plus_one_per_conversation_with_missed_messages(users):
    ada, bob, cyd, dan = users
    groups = [services.create_group(owner=ada, title=f"g{i}", member_ids=[bob.pk, cyd.pk]) for i in range(3)]
    quiet = services.create_group(owner=ada, title="quiet", member_ids=[bob.pk])
    for group in groups:
        send(group, ada, 2)
    heads = selectors.socket_heads(bob.pk)
    selectors.resume_plan(bob.pk, {groups[0].pk: (0, None)})  # compiled on first use
    caught_up = {quiet.pk: (heads[quiet.pk][0], None)}
    plan, one = statements(lambda: selectors.resume_plan(bob.pk, {**caught_up, groups[0].pk: (0, None)}))
    assert len(one) == 2 and [m.body for m in plan.replay[groups[0].pk]][-2:] == ["m 0", "m 1"]
    wanted = {**caught_up, **{g.pk: (heads[g.pk][0] - 2, None) for g in groups}}
    plan, three = statements(lambda: selectors.resume_plan(bob.pk, wanted))
    assert len(three) == 1 + 3
    assert {c: [m.seq for m in rows] for c, rows in plan.replay.items()} == \
        {g.pk: [heads[g.pk][0] - 1, heads[g.pk][0]] for g in groups}


# --- the compiled reads return what the querysets return ----------------------------------------------------


@pytest.mark.django_db
def test_named_seats_are_the_users_active_seats_among_those_named_for_any_count(users):
    ada, bob, cyd, dan = users
    mine = [services.create_group(owner=ada, title=f"g{i}", member_ids=[bob.pk]) for i in range(5)]
    left = services.create_group(owner=ada, title="left", member_ids=[bob.pk, cyd.pk])
    services.remove_member(conversation_id=left.pk, actor=ada, user_id=bob.pk)
    theirs = services.create_group(owner=cyd, title="theirs", member_ids=[dan.pk])
    named = [c.pk for c in mine] + [left.pk, theirs.pk, 10**9]
    for count in range(1, len(named) + 1):  # arities 1, 2, 4, 8 and the padding between them
        wanted = named[:count][::-1]
        expected = {s.pk: (s.conversation_id, s.conversation.last_seq, s.visible_from_seq) for s in
                    Membership.objects.select_related("conversation")
                    .filter(user_id=bob.pk, left_at__isnull=True, conversation_id__in=wanted)}
        got = {s.pk: (s.conversation_id, s.conversation.last_seq, s.visible_from_seq)
               for s in selectors._named_seats(bob.pk, wanted)}
        assert got == expected
    assert left.pk not in {s.conversation_id for s in selectors._named_seats(bob.pk, named)}
    assert theirs.pk not in {s.conversation_id for s in selectors._named_seats(bob.pk, named)}


@pytest.mark.django_db
def test_missed_messages_start_where_the_seat_may_see(users):
    ada, bob, cyd, _ = users
    group = services.create_group(owner=ada, title="g", member_ids=[bob.pk])
    send(group, ada, 3, "early")
    services.add_members(conversation_id=group.pk, actor=ada, user_ids=[cyd.pk])  # joins later: sees less
    send(group, ada, 2, "late")
    for user in (bob, cyd):
        seat = selectors.seat_of(user.pk, group.pk)
        for after in (0, 2, seat.conversation.last_seq):
            expected = list(selectors.visible_messages(seat).filter(seq__gt=after).order_by("seq"))
            got = selectors._messages_after(seat, after)
            assert [(m.pk, m.seq, m.body, m.sender_id) for m in got] == \
                [(m.pk, m.seq, m.body, m.sender_id) for m in expected]
            assert all(isinstance(m, Message) and m.created_at.tzinfo is not None for m in got)
    cyd_seat = selectors.seat_of(cyd.pk, group.pk)
    assert not [m for m in selectors._messages_after(cyd_seat, 0) if m.body.startswith("early")]


# --- the session is still checked --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_compiled_session_check_still_refuses_revoked_expired_disabled_and_foreign(users):
    ada, bob, *_ = users
    token = token_for(ada)
    device = Device.objects.filter(user=ada).latest("pk")
    grant = verify_access_token(token)
    assert grant.user == ada and grant.device == device and grant.device.user is grant.user
    with pytest.raises(TokenInvalid):  # the device is Ada's, not Bob's
        check_session(user_id=bob.pk, device_id=device.pk, generation=device.generation)
    with pytest.raises(TokenInvalid):  # ids no row can have (a forged claim never reaches the SQL)
        check_session(user_id=2**70, device_id=device.pk, generation=device.generation)
    with pytest.raises(TokenExpired):
        check_session(user_id=ada.pk, device_id=device.pk, generation=device.generation,
                      expires_at=clock.now() - dt.timedelta(seconds=1))
    stale, _ = issue_access_token(user_id=ada.pk, device_id=device.pk, generation=device.generation - 1)
    with pytest.raises(SessionEnded):  # a newer sign-in on the device voided it
        verify_access_token(stale)
    ada.is_active = False
    ada.save(update_fields=["is_active"])
    with pytest.raises(DomainError) as disabled:
        verify_access_token(token)
    assert disabled.value.code == "ACCOUNT_DISABLED"
    ada.is_active = True
    ada.save(update_fields=["is_active"])
    Device.objects.filter(pk=device.pk).update(revoked_at=clock.now())
    with pytest.raises(SessionEnded):
        verify_access_token(token)


# --- over the socket ---------------------------------------------------------------------------------------


async def _open(token: str) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, "/ws/")
    connected, _ = await ws.connect()
    assert connected
    await ws.send_json_to({"type": "auth", "token": token})
    return ws


@pytest.fixture
def db_trips(monkeypatch) -> list[str]:
    """The names of the functions the consumer hands to a database thread (`consumers.db`), in order."""
    trips: list[str] = []
    real_db = consumers.db

    def counting_db(fn):
        trips.append(getattr(fn, "__name__", repr(fn)))
        return real_db(fn)

    monkeypatch.setattr(consumers, "db", counting_db)
    return trips


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_reaches_auth_ok_in_two_database_trips_and_resumes_in_one(db_trips):
    ada, bob = await database_sync_to_async(lambda: [new_user("Ada"), new_user("Bob")])()
    group = await database_sync_to_async(services.create_group)(owner=ada, title="g", member_ids=[bob.pk])
    await database_sync_to_async(send)(group, ada, 3)
    token = await database_sync_to_async(token_for)(bob)
    trips = db_trips
    ws = await _open(token)
    assert (await ws.receive_json_from(timeout=5))["type"] == "auth.ok"
    assert trips == ["verify_access_token", "socket_opened_reads"]
    trips.clear()
    last = (await database_sync_to_async(selectors.socket_heads)(bob.pk))[group.pk][0]
    await ws.send_json_to({"type": "resume", "id": "r", "conversations": {gid("Conversation", group.pk): last - 2}})
    frames = []
    while (frame := await ws.receive_json_from(timeout=5))["type"] != "resume.done":
        frames.append(frame)
    assert [f["message"]["seq"] for f in frames if f["type"] == "message"] == [last - 1, last]  # what was missed
    assert trips == ["resume_plan"]
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sockets_waiting_their_turn_to_authenticate_are_not_timed_out(settings, monkeypatch):
    settings.QUANZI = {**settings.QUANZI, "WS_AUTH_TIMEOUT_SECONDS": 0.3}
    settings.QUANZI_CHAT = {"SOCKET_AUTH_CONCURRENCY": 1}
    users = await database_sync_to_async(lambda: [new_user(f"u{i}") for i in range(3)])()
    tokens = [await database_sync_to_async(token_for)(u) for u in users]
    real_verify = consumers.verify_access_token

    def slow_verify(token):  # each turn outlasts the auth deadline's share
        import time

        time.sleep(0.2)
        return real_verify(token)

    monkeypatch.setattr(consumers, "verify_access_token", slow_verify)
    sockets = await asyncio.gather(*(_open(t) for t in tokens))
    answers = [await ws.receive_json_from(timeout=5) for ws in sockets]
    assert [a["type"] for a in answers] == ["auth.ok"] * 3
    for ws in sockets:
        await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_ping_is_one_database_trip_and_still_ends_a_revoked_session(db_trips):
    """Every socket pings every heartbeat: the session check, presence and the seq heads are one trip; a
    message whose doorbell was lost is still delivered after the pong, and a signed-out device is closed."""
    ada, bob = await database_sync_to_async(lambda: [new_user("Ada"), new_user("Bob")])()
    group = await database_sync_to_async(services.create_group)(owner=ada, title="g", member_ids=[bob.pk])
    token = await database_sync_to_async(token_for)(bob)
    ws = await _open(token)
    assert (await ws.receive_json_from(timeout=5))["type"] == "auth.ok"
    trips = db_trips
    trips.clear()  # the socket's open
    await ws.send_json_to({"type": "ping", "id": "p0"})
    assert (await ws.receive_json_from(timeout=5)) == {"type": "pong", "id": "p0"}
    assert trips == ["heartbeat_reads"]  # nothing missed: one trip
    trips.clear()
    with realtime.deferred_rings():  # the doorbell is lost: only the heartbeat can deliver it
        await database_sync_to_async(send)(group, ada, 1)
    await ws.send_json_to({"type": "ping", "id": "p1"})
    assert (await ws.receive_json_from(timeout=5)) == {"type": "pong", "id": "p1"}
    assert (await ws.receive_json_from(timeout=5))["type"] == "message"
    assert trips == ["heartbeat_reads", "catch_up"]  # and one more to read what was missed
    # signed out without a doorbell (a lost one): the next ping finds out
    await database_sync_to_async(lambda: Device.objects.filter(user=bob).update(generation=F("generation") + 1))()
    await ws.send_json_to({"type": "ping", "id": "p2"})
    assert (await ws.receive_json_from(timeout=5))["code"] == "SESSION_REVOKED"
    assert (await ws.receive_output(timeout=5))["type"] == "websocket.close"
