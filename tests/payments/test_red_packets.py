"""Red packets at the service level and through GraphQL: send, grab, expire, the card, bad input."""

import datetime as dt
import hashlib

import pytest

from backend.accounts.ids import user_gid
from backend.chat import events
from backend.chat import services as chat
from backend.chat.models import Message
from backend.core import clock
from backend.core.ids import encode_id
from backend.notifications.models import Notification
from backend.payments import rules, services
from backend.payments.models import RedPacket
from backend.wallet.models import LedgerAccount
from tests.conftest import open_direct_between_friends

from .conftest import assert_ledger_ok, balance, codes, group_of, new_user, snapshot

pytestmark = pytest.mark.django_db


def card_of(packet: RedPacket) -> dict:
    return events.card_document(Message.objects.get(pk=packet.message_id))


def send(sender, conversation, *, amount=1_000, count=3, kind="lucky", key="packet-0001", **kw):
    return services.send_red_packet(sender=sender, conversation_id=conversation.pk, kind=kind, amount=amount,
                                    count=count, idempotency_key=key, **kw)[0]


def test_lucky_packet_from_send_to_best_luck_with_a_verifiable_seed(people):
    ada, bob, cyd, dan = people
    group = group_of(ada, bob, cyd, dan)
    packet = send(ada, group, amount=1_000, count=3, greeting="新年快乐")
    assert balance(ada) == (9_000, 0)
    escrow = LedgerAccount.objects.get(kind="payments_escrow")
    assert escrow.balance == 1_000
    card = card_of(packet)
    assert card["kind"] == "red_packet" and card["title"] == "新年快乐" and card["version"] == 0
    assert card["state"]["seed_hash"] == packet.seed_hash and "seed" not in card["state"]
    # Same key again: the same packet, nothing moves twice.
    again, replayed = services.send_red_packet(sender=ada, conversation_id=group.pk, kind="lucky", amount=1_000,
                                              count=3, idempotency_key="packet-0001")
    assert replayed and again.pk == packet.pk and balance(ada) == (9_000, 0)

    amounts = [services.grab_red_packet(user=u, packet_id=packet.pk).amount for u in (bob, ada, cyd)]
    assert sum(amounts) == 1_000 and min(amounts) >= 1
    assert codes(services.grab_red_packet, user=dan, packet_id=packet.pk) == "PACKET_CLOSED"
    assert codes(services.grab_red_packet, user=bob, packet_id=packet.pk) == "ALREADY_GRABBED"
    packet.refresh_from_db()
    assert packet.status == "empty" and escrow.__class__.objects.get(pk=escrow.pk).balance == 0
    card = card_of(packet)
    assert card["version"] == 3 and card["state"]["status"] == "empty"
    assert card["state"]["grabs"] == [[user_gid(u.pk), a] for u, a in zip((bob, ada, cyd), amounts, strict=True)]
    best = max(zip((bob, ada, cyd), amounts, strict=True), key=lambda p: p[1])[0]
    assert card["state"]["best_luck"] == user_gid(best.pk)
    # The published seed reproduces the split and matches the hash published at send time.
    seed = bytes.fromhex(card["state"]["seed"])
    assert hashlib.sha256(seed).hexdigest() == packet.seed_hash
    assert rules.lucky_split(1_000, 3, seed) == amounts
    assert Notification.objects.filter(recipient=ada, event="payments.red_packet_emptied").count() == 1
    assert_ledger_ok()


def test_unopened_rest_is_refunded_once_after_24_hours(people):
    ada, bob, cyd, _ = people
    group = group_of(ada, bob, cyd)
    packet = send(ada, group, amount=900, count=3, kind="fixed")
    assert services.grab_red_packet(user=bob, packet_id=packet.pk).amount == 300
    assert services.expire_red_packets() == 0  # not yet due
    with clock.frozen_at(clock.now() + dt.timedelta(hours=24, seconds=1)):
        assert codes(services.grab_red_packet, user=cyd, packet_id=packet.pk) == "PACKET_CLOSED"
        assert services.expire_red_packets() == 1
        assert services.expire_red_packets() == 0
    packet.refresh_from_db()
    assert packet.status == "expired" and packet.refunded_amount == 600
    assert balance(ada) == (10_000 - 300, 0) and balance(bob) == (10_300, 0)
    state = card_of(packet)["state"]
    assert state["status"] == "expired" and state["refunded_amount"] == 600 and "seed" in state
    assert_ledger_ok()


def test_direct_chat_packets_are_for_the_other_person(people):
    ada, bob, *_ = people
    direct = open_direct_between_friends(ada, bob)
    assert codes(services.send_red_packet, sender=ada, conversation_id=direct.pk, kind="lucky", amount=100,
                 count=2, idempotency_key="direct-002") == "TOO_MANY_PARTS"
    packet = send(ada, direct, amount=100, count=1, key="direct-001")
    assert codes(services.grab_red_packet, user=ada, packet_id=packet.pk) == "CANNOT_GRAB_OWN"
    assert services.grab_red_packet(user=bob, packet_id=packet.pk).amount == 100


def test_bad_input_gets_a_code_and_moves_nothing(people, settings):
    ada, bob, cyd, dan = people
    eve = new_user("Eve")
    group = group_of(ada, bob, cyd)
    before = snapshot()
    cases = {
        "AMOUNT_BELOW_PARTS": dict(amount=2, count=3),
        "TOO_MANY_PARTS": dict(amount=1_000, count=4),  # 3 members
        "PARTS_INVALID": dict(amount=1_000, count=0),
        "AMOUNT_INVALID": dict(amount=10.5, count=1),
        "PACKET_KIND_INVALID": dict(kind="huge"),
        "INSUFFICIENT_FUNDS": dict(amount=50_000, count=2),
        "IDEMPOTENCY_KEY_INVALID": dict(key="short"),
        "GREETING_INVALID": dict(greeting="x" * 41),
    }
    for code, kw in cases.items():
        args = {"amount": 1_000, "count": 2, "kind": "lucky", "key": f"bad-{code}"[:60], **kw}
        assert codes(send, sender=ada, conversation=group, **args) == code, code
    settings.QUANZI_PAYMENTS = {"PACKET_MAX_PARTS": 2}
    assert codes(send, sender=ada, conversation=group, count=3, key="cap-0001") == "TOO_MANY_PARTS"
    # A stranger cannot send into the conversation (it does not exist for them).
    fundless = codes(send, sender=eve, conversation=group, count=1, key="eve-0001")
    assert fundless == "NOT_FOUND"
    assert snapshot() == before
    settings.QUANZI_PAYMENTS = {}
    # Grabbing after leaving, or as a stranger: the packet does not exist for them.
    packet = send(ada, group, amount=600, count=3, key="good-001")
    chat.leave_conversation(conversation_id=group.pk, user=cyd)
    before = snapshot()
    assert codes(services.grab_red_packet, user=cyd, packet_id=packet.pk) == "NOT_FOUND"
    assert codes(services.grab_red_packet, user=dan, packet_id=packet.pk) == "NOT_FOUND"
    assert snapshot() == before


GRAB = """mutation($id: ID!) { grabRedPacket(redPacketId: $id) { amount errors { code }
  redPacket { status grabbedCount seedHash seed myGrab { amount } grabs { userId amount } } } }"""
SEND = """mutation($c: ID!, $a: Fen!, $n: Int!, $k: String!) {
  sendRedPacket(conversationId: $c, kind: LUCKY, amount: $a, count: $n, idempotencyKey: $k) {
    replayed errors { code } redPacket { id amount count status seedHash seed } } }"""
READ = """query($id: ID!) { redPacket(id: $id) { status grabbedAmount bestLuckUserId seed } }"""


def test_graphql_send_grab_read_and_scoping(people, client):
    from tests.chat.conftest import token_for

    ada, bob, cyd, _ = people
    eve = new_user("Eve")
    group = group_of(ada, bob)

    def gql(user, query, variables):
        return client.post("/graphql/", {"query": query, "variables": variables}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(user)}").json()["data"]

    sent = gql(ada, SEND, {"c": encode_id("Conversation", group.pk), "a": 500, "n": 2, "k": "gql-packet-1"})
    payload = sent["sendRedPacket"]
    assert payload["errors"] == [] and payload["redPacket"]["seed"] is None and payload["redPacket"]["amount"] == 500
    packet_id = payload["redPacket"]["id"]
    for user in (eve, cyd):  # strangers: exactly the answer of a missing id
        assert gql(user, GRAB, {"id": packet_id})["grabRedPacket"]["errors"] == [{"code": "NOT_FOUND"}]
    first = gql(bob, GRAB, {"id": packet_id})["grabRedPacket"]
    assert first["errors"] == [] and first["redPacket"]["myGrab"]["amount"] == first["amount"]
    second = gql(ada, GRAB, {"id": packet_id})["grabRedPacket"]
    assert first["amount"] + second["amount"] == 500 and second["redPacket"]["status"] == "EMPTY"
    assert second["redPacket"]["seed"] is not None
    read = gql(bob, READ, {"id": packet_id})["redPacket"]
    assert read["grabbedAmount"] == 500 and read["bestLuckUserId"] is not None
    assert gql(eve, READ, {"id": packet_id}) is None or gql(eve, READ, {"id": packet_id})["redPacket"] is None


def test_scanning_jobs_are_registered_and_run_by_run_due_jobs(people, capsys):
    from django.core.management import call_command

    from backend.notifications import schedule

    names = {job.name for job in schedule.periodic_jobs()}
    assert {"payments.expire_red_packets", "payments.expire_transfers", "payments.remind_due_bills"} <= names
    ada, bob, cyd, _ = people
    packet = send(ada, group_of(ada, bob, cyd), amount=500, count=2, key="jobs-0001")
    call_command("run_due_jobs", advance="25h", job=["payments.expire_red_packets"])
    call_command("run_due_jobs", advance="26h", job=["payments.expire_red_packets"])  # again: nothing twice
    packet.refresh_from_db()
    assert packet.status == "expired" and packet.refunded_amount == 500 and balance(ada) == (10_000, 0)
    assert "ok      payments.expire_red_packets: 1" in capsys.readouterr().out
