"""The send path's cost and its guarantees under concurrency: a fixed number of statements per send (not one
more per member), gapless seqs and one message per client id when senders race on one conversation, and a
member removed while others send is never addressed by a later message."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.chat import services
from backend.chat.models import Conversation, Membership, Message
from backend.core import presence, realtime
from tests.conftest import race

from .conftest import new_user

_ids = itertools.count()


def send(conversation, sender, text="hi", cid=None):
    return services.send_message(conversation_id=conversation.pk, sender=sender,
                                 client_msg_id=cid or f"s{next(_ids)}", text=text)


def statements(fn) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        fn()
    control = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT")  # transaction control, not work
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(control)]


def online(*users) -> None:
    for user in users:
        presence.socket_alive(user.pk, f"socket-{user.pk}")


# The idempotency look-up, then under the lock, on PostgreSQL one query string (one round trip): lock + seq
# + INSERT in a CTE, then the member read. Databases without data-modifying CTEs (SQLite) run the lock + seq,
# the INSERT, the last message, the sender's read marker and the members as five statements.
SEND_STATEMENTS = 2 if connection.vendor == "postgresql" else 6


@pytest.mark.django_db
def test_a_send_costs_the_same_few_statements_in_a_pair_and_in_a_large_group(users):
    ada, bob, *_ = users
    others = [new_user(f"m{i}") for i in range(30)]
    online(ada, bob, *others)  # nobody idle: no push rows
    direct = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    group = services.create_group(owner=ada, title="big", member_ids=[bob.pk] + [u.pk for u in others])
    send(direct, ada), send(group, ada)  # warm-up (one-off look-ups)
    assert len(statements(lambda: send(direct, ada))) == SEND_STATEMENTS
    assert len(statements(lambda: send(group, ada))) == SEND_STATEMENTS
    resend = statements(lambda: send(group, ada, cid="again")) and statements(lambda: send(group, ada, cid="again"))
    assert len(resend) <= 3  # the original, its conversation, the seat check: no lock, no new message


@pytest.mark.django_db
def test_a_send_still_moves_the_conversation_and_the_senders_read_marker(users):
    ada, bob, *_ = users
    direct = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    send(direct, bob)
    message = send(direct, ada, text="latest").message
    conversation = Conversation.objects.get(pk=direct.pk)
    assert (conversation.last_seq, conversation.last_message_id) == (2, message.pk)
    assert conversation.last_activity_at == message.created_at
    seats = dict(Membership.objects.filter(conversation=direct).values_list("user_id", "last_read_seq"))
    assert seats == {ada.pk: 2, bob.pk: 1}  # the sender has read their own message; bob has not


@pytest.mark.django_db
def test_a_refused_send_takes_no_seq(users):
    ada, bob, cyd, _ = users
    direct = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    send(direct, ada)
    with pytest.raises(Exception, match="not found|Not found|NOT_FOUND"):
        send(direct, cyd)  # not a member: the seq it took under the lock is rolled back
    assert send(direct, bob).message.seq == 2
    assert Conversation.objects.get(pk=direct.pk).last_seq == 2


@pytest.mark.django_db(transaction=True)
def test_racing_senders_get_gapless_seqs_and_a_racing_resend_makes_one_message(require_postgres):
    owner = new_user("Owner")
    senders = [new_user(f"r{i}") for i in range(6)]
    online(owner, *senders)  # no push rows: the race is about seqs, not the push queue
    group = services.create_group(owner=owner, title="race", member_ids=[u.pk for u in senders])
    start = Conversation.objects.get(pk=group.pk).last_seq
    turn = itertools.count()

    def contender():
        me = senders[next(turn)]
        made = [send(group, me, cid=f"{me.pk}-{k}").message.seq for k in range(5)]
        again = send(group, owner, cid="the-same")  # everyone resends the owner's one message
        return me.pk, made, again.created, again.message.pk

    results = race(contender, len(senders), timeout=120)
    assert len(results) == len(senders)
    stored = list(Message.objects.filter(conversation=group, seq__gt=start).values_list("seq", flat=True))
    assert stored == list(range(start + 1, start + len(senders) * 5 + 2))  # gapless: 30 sends + one resent
    assert sum(created for _, _, created, _ in results) == 1 and len({pk for *_, pk in results}) == 1
    conversation = Conversation.objects.get(pk=group.pk)
    assert conversation.last_seq == stored[-1]
    assert conversation.last_message_id == Message.objects.get(conversation=group, seq=stored[-1]).pk
    for user_id, made, _, _ in results:  # each sender has read up to their own last message
        assert Membership.objects.get(conversation=group, user_id=user_id).last_read_seq >= made[-1]


@pytest.mark.django_db(transaction=True)
def test_a_member_removed_while_others_send_is_not_addressed_afterwards(require_postgres, monkeypatch):
    owner, leaving = new_user("Owner"), new_user("Leaving")
    senders = [new_user(f"s{i}") for i in range(4)]
    online(owner, leaving, *senders)
    group = services.create_group(owner=owner, title="race", member_ids=[leaving.pk] + [u.pk for u in senders])
    start = Conversation.objects.get(pk=group.pk).last_seq
    rung: dict[int, list[int]] = {}
    real = realtime.ring_many

    def record(rings):
        rung.update((event["seq"], event["to"]) for _, event in rings if event.get("type") == "chat.message")
        real(rings)

    monkeypatch.setattr(realtime, "ring_many", record)
    turn = itertools.count()

    def contender():
        n = next(turn)
        if n == len(senders):
            services.remove_member(conversation_id=group.pk, actor=owner, user_id=leaving.pk)
        else:
            for _ in range(5):
                send(group, senders[n])

    race(contender, len(senders) + 1, timeout=120)
    assert sorted(rung) == list(range(start + 1, start + len(senders) * 5 + 2))  # every message rang once
    removal = Message.objects.get(conversation=group, kind="system", seq__gt=start).seq
    addressed = [seq for seq in sorted(rung) if leaving.pk in rung[seq]]
    assert addressed == list(range(start + 1, removal))  # everything before the removal, nothing after
