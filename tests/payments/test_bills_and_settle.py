"""AA bills (split, pay, decline, offline, remind, close, cancel with or without refunds) and settle-up."""

import datetime as dt

import pytest

from backend.accounts.ids import user_gid
from backend.chat import events
from backend.chat import services as chat
from backend.chat.models import Message
from backend.core import clock
from backend.notifications.models import Notification
from backend.payments import services
from backend.payments.models import Share
from backend.wallet import services as wallet
from backend.wallet.models import RiskListEntry
from tests.conftest import open_direct_between_friends

from .conftest import assert_ledger_ok, balance, codes, group_of, new_user, snapshot

pytestmark = pytest.mark.django_db


def bill(creator, group, participants, amount=1_000, method="equal", key="bill-00001", title="火锅"):
    return services.create_bill(creator=creator, conversation_id=group.pk, title=title, amount=amount,
                                method=method, participants=participants, idempotency_key=key)[0]


def share_of(b, user) -> Share:
    return b.shares.get(participant=user)


def state(obj) -> dict:
    return events.card_document(Message.objects.get(pk=obj.message_id))["state"]


def test_split_methods_add_up_with_a_deterministic_tie_break(people):
    ada, bob, cyd, dan = people
    ids = sorted(u.pk for u in people)
    assert services.split_bill(1_000, "equal", [(i, None) for i in ids]) == dict(zip(ids, [250] * 4, strict=True))
    # 1001 fen in 3: one extra fen, and the lowest user id gets it.
    three = sorted(ids[:3])
    assert services.split_bill(1_001, "equal", [(i, None) for i in reversed(three)]) == \
        {three[0]: 334, three[1]: 334, three[2]: 333}
    assert list(services.split_bill(100, "percent", [(three[0], 3_333), (three[1], 3_333), (three[2], 3_334)])
                .values()) == [33, 33, 34]
    assert sum(services.split_bill(997, "shares", [(ids[0], 1), (ids[1], 2), (ids[2], 3)]).values()) == 997
    assert services.split_bill(500, "exact", [(ids[0], 100), (ids[1], 400)]) == {ids[0]: 100, ids[1]: 400}


def test_bill_lifecycle_pay_decline_offline_and_the_card(people):
    ada, bob, cyd, dan = people
    group = group_of(ada, bob, cyd, dan)
    b = bill(ada, group, [ada.pk, bob.pk, cyd.pk, dan.pk], amount=1_000)
    assert share_of(b, ada).status == "own" and share_of(b, bob).amount == 250
    assert Notification.objects.filter(event="payments.bill_created").count() == 3
    services.pay_share(user=bob, share_id=share_of(b, bob).pk)
    services.pay_share(user=bob, share_id=share_of(b, bob).pk)  # a retry moves nothing again
    assert balance(bob) == (9_750, 0) and balance(ada) == (10_250, 0)
    assert codes(services.pay_share, user=cyd, share_id=share_of(b, dan).pk) == "NOT_PARTICIPANT"
    assert codes(services.mark_paid_offline, user=cyd, share_id=share_of(b, dan).pk) == "NOT_PARTICIPANT"
    services.decline_share(user=cyd, share_id=share_of(b, cyd).pk)
    services.mark_paid_offline(user=ada, share_id=share_of(b, dan).pk)
    b.refresh_from_db()
    assert b.status == "completed"
    card = state(b)
    assert card["status"] == "completed" and card["paid_count"] == 2 and card["paid_amount"] == 500
    assert sorted(s[2] for s in card["shares"]) == ["declined", "own", "paid", "paid_offline"]
    assert Notification.objects.filter(recipient=ada, event="payments.bill_completed").count() == 1
    assert_ledger_ok()


def test_cancel_refunds_or_keeps_paid_shares_as_chosen(people):
    ada, bob, cyd, dan = people
    group = group_of(ada, bob, cyd, dan)
    refunded = bill(ada, group, [bob.pk, cyd.pk], amount=600, key="bill-00002")
    services.pay_share(user=bob, share_id=share_of(refunded, bob).pk)
    assert codes(services.cancel_bill, user=bob, bill_id=refunded.pk, refund_paid=True) == "NOT_PARTICIPANT"
    services.cancel_bill(user=ada, bill_id=refunded.pk, refund_paid=True)
    assert balance(bob) == (10_000, 0) and balance(ada) == (10_000, 0)
    assert share_of(refunded, bob).status == "refunded" and share_of(refunded, cyd).status == "void"
    assert state(refunded)["status"] == "cancelled" and state(refunded)["refunded_on_cancel"] is True
    before = snapshot()
    assert codes(services.pay_share, user=cyd, share_id=share_of(refunded, cyd).pk) == "BILL_NOT_OPEN"
    assert snapshot() == before
    kept = bill(ada, group, [bob.pk, cyd.pk], amount=600, key="bill-00003")
    services.pay_share(user=cyd, share_id=share_of(kept, cyd).pk)
    services.cancel_bill(user=ada, bill_id=kept.pk, refund_paid=False)
    assert balance(cyd) == (9_700, 0) and state(kept)["refunded_on_cancel"] is False
    closed = bill(ada, group, [bob.pk, cyd.pk], amount=600, key="bill-00004")
    services.pay_share(user=bob, share_id=share_of(closed, bob).pk)
    services.close_bill(user=ada, bill_id=closed.pk)
    assert share_of(closed, bob).status == "paid" and share_of(closed, cyd).status == "void"
    assert_ledger_ok()


def test_bill_bad_input_moves_nothing(people):
    ada, bob, cyd, dan = people
    eve = new_user("Eve")
    group = group_of(ada, bob, cyd)
    direct = open_direct_between_friends(ada, bob)
    before = snapshot()
    cases = [
        ("CONVERSATION_KIND_NOT_SUPPORTED", dict(group=direct, participants=[bob.pk])),
        ("AMOUNT_BELOW_PARTS", dict(participants=[bob.pk, cyd.pk], amount=1)),
        ("SPLIT_INVALID", dict(participants=[[bob.pk, 100], [cyd.pk, 100]], method="exact", amount=300)),
        ("SPLIT_INVALID", dict(participants=[[bob.pk, 5_000], [cyd.pk, 4_000]], method="percent")),
        ("METHOD_INVALID", dict(participants=[bob.pk], method="vibes")),
        ("NOT_FOUND", dict(participants=[bob.pk, eve.pk])),
        ("PARTICIPANTS_INVALID", dict(participants=[bob.pk, bob.pk])),
        ("PARTICIPANTS_INVALID", dict(participants=[ada.pk])),
        ("TITLE_INVALID", dict(participants=[bob.pk], title=" ")),
    ]
    for n, (code, kw) in enumerate(cases):
        args = {"group": group, "key": f"bad-bill-{n:02d}", **kw}
        assert codes(bill, creator=ada, **args) == code, (code, kw)
    assert codes(bill, creator=eve, group=group, participants=[bob.pk], key="bad-bill-99") == "NOT_FOUND"
    assert snapshot() == before


def test_paying_a_share_needs_the_risk_check_and_membership(people):
    ada, bob, cyd, _ = people
    group = group_of(ada, bob, cyd)
    b = bill(ada, group, [bob.pk, cyd.pk])
    RiskListEntry.objects.create(account=wallet.ensure_wallet(user_id=ada.pk), source="police", level="block",
                                 reported_on=dt.date(2026, 11, 1))
    before = snapshot()
    assert codes(services.pay_share, user=bob, share_id=share_of(b, bob).pk) == "PAYEE_RISK_BLOCKED"
    chat.leave_conversation(conversation_id=group.pk, user=cyd)
    assert codes(services.pay_share, user=cyd, share_id=share_of(b, cyd).pk) == "NOT_FOUND"
    assert snapshot() == before


def test_reminders_by_hand_and_by_schedule(people):
    ada, bob, cyd, _ = people
    group = group_of(ada, bob, cyd)
    b = bill(ada, group, [bob.pk, cyd.pk])
    services.pay_share(user=bob, share_id=share_of(b, bob).pk)
    assert services.remind_bill(user=ada, bill_id=b.pk) == 1
    assert codes(services.remind_bill, user=ada, bill_id=b.pk) == "REMINDED_RECENTLY"
    assert codes(services.remind_bill, user=bob, bill_id=b.pk) == "NOT_PARTICIPANT"
    assert services.remind_due_bills() == 0
    with clock.frozen_at(clock.now() + dt.timedelta(hours=25)):
        assert services.remind_due_bills() == 1
        assert services.remind_due_bills() == 0
    assert Notification.objects.filter(recipient=cyd, event="payments.bill_reminder").count() == 2
    assert not Notification.objects.filter(recipient=bob, event="payments.bill_reminder").exists()


def test_settle_up_clears_the_group_in_few_transfers_and_marks_shares_paid(people):
    ada, bob, cyd, dan = people
    group = group_of(ada, bob, cyd, dan)
    # Bob owes Ada 300; Cyd owes Bob 300 (net: Cyd → Ada 300, Bob even); Dan owes Cyd 200.
    b1 = bill(ada, group, [[bob.pk, 300]], method="exact", amount=300, key="bill-s0001")
    b2 = bill(bob, group, [[cyd.pk, 300]], method="exact", amount=300, key="bill-s0002")
    b3 = bill(cyd, group, [[dan.pk, 200]], method="exact", amount=200, key="bill-s0003")
    assert services.group_balances(group.pk) == {ada.pk: 300, cyd.pk: -100, dan.pk: -200}
    settlement = services.start_settlement(user=bob, conversation_id=group.pk)
    plan = sorted(settlement.transfers.values_list("debtor_id", "creditor_id", "amount"))
    assert plan == sorted([(dan.pk, ada.pk, 200), (cyd.pk, ada.pk, 100)])
    assert codes(services.start_settlement, user=ada, conversation_id=group.pk) == "SETTLEMENT_OPEN"
    # Shares under a settle-up are paid through it, not directly.
    assert codes(services.pay_share, user=bob, share_id=share_of(b1, bob).pk) == "SHARE_IN_SETTLEMENT"
    assert codes(services.cancel_bill, user=ada, bill_id=b1.pk, refund_paid=False) == "BILL_IN_SETTLEMENT"
    assert codes(services.pay_settlement, user=bob, settlement_id=settlement.pk) == "NOT_PARTICIPANT"
    services.pay_settlement(user=dan, settlement_id=settlement.pk)
    assert share_of(b3, dan).status == "paid" and share_of(b1, bob).status == "pending"
    assert codes(services.cancel_settlement, user=bob, settlement_id=settlement.pk) == "SETTLEMENT_STARTED"
    services.pay_settlement(user=cyd, settlement_id=settlement.pk)
    settlement.refresh_from_db()
    assert settlement.status == "completed" and state(settlement)["status"] == "completed"
    for b in (b1, b2, b3):
        b.refresh_from_db()
        assert b.status == "completed" and state(b)["status"] == "completed"
    assert balance(ada) == (10_300, 0) and balance(bob) == (10_000, 0)
    assert balance(cyd) == (9_900, 0) and balance(dan) == (9_800, 0)
    assert services.group_balances(group.pk) == {}
    assert codes(services.start_settlement, user=ada, conversation_id=group.pk) == "NOTHING_TO_SETTLE"
    assert_ledger_ok()


def test_a_settle_up_nobody_paid_can_be_cancelled(people):
    ada, bob, cyd, _ = people
    group = group_of(ada, bob, cyd)
    b = bill(ada, group, [bob.pk, cyd.pk], amount=200)
    settlement = services.start_settlement(user=ada, conversation_id=group.pk)
    assert codes(services.cancel_settlement, user=bob, settlement_id=settlement.pk) == "NOT_PARTICIPANT"
    services.cancel_settlement(user=ada, settlement_id=settlement.pk)
    services.pay_share(user=bob, share_id=share_of(b, bob).pk)
    assert share_of(b, bob).status == "paid"


CREATE = """mutation($c: ID!, $p: [AaParticipantInput!]!) {
  createAaBill(conversationId: $c, title: "KTV", amount: 900, method: SHARES, participants: $p,
               idempotencyKey: "gql-bill-0001") {
    errors { code } bill { id status amount shares { id participantId amount status } } } }"""
PAY = """mutation($s: ID!) { payAaShare(shareId: $s) { errors { code } bill { status myShare { status } } } }"""
BALANCES = """query($c: ID!) { groupBalances(conversationId: $c) { userId amount } }"""
START = """mutation($c: ID!) { startSettleUp(conversationId: $c) { errors { code }
  settleUp { id status transfers { debtorId creditorId amount paid } } } }"""
PAY_SETTLE = """mutation($s: ID!) { paySettleUp(settleUpId: $s) { errors { code } settleUp { status } } }"""


def test_graphql_bill_and_settle_up(people, client):
    from backend.core.ids import encode_id
    from tests.chat.conftest import token_for

    ada, bob, cyd, _ = people
    eve = new_user("Eve")
    group = group_of(ada, bob, cyd)
    c = encode_id("Conversation", group.pk)

    def gql(user, query, variables):
        return client.post("/graphql/", {"query": query, "variables": variables}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(user)}").json()

    people_in = [{"userId": user_gid(u.pk), "value": w} for u, w in ((ada, 1), (bob, 1), (cyd, 1))]
    created = gql(ada, CREATE, {"c": c, "p": people_in})["data"]["createAaBill"]
    assert created["errors"] == [] and [s["amount"] for s in created["bill"]["shares"]] == [300, 300, 300]
    shares = {s["participantId"]: s["id"] for s in created["bill"]["shares"]}
    bob_share = shares[user_gid(bob.pk)]
    assert gql(cyd, PAY, {"s": bob_share})["data"]["payAaShare"]["errors"] == [{"code": "NOT_PARTICIPANT"}]
    assert gql(eve, PAY, {"s": bob_share})["data"]["payAaShare"]["errors"] == [{"code": "NOT_FOUND"}]
    paid = gql(bob, PAY, {"s": bob_share})["data"]["payAaShare"]
    assert paid["errors"] == [] and paid["bill"]["myShare"]["status"] == "PAID"
    balances = gql(bob, BALANCES, {"c": c})["data"]["groupBalances"]
    assert balances == [{"userId": user_gid(ada.pk), "amount": 300},
                        {"userId": user_gid(cyd.pk), "amount": -300}]
    assert "errors" in gql(eve, BALANCES, {"c": c})
    started = gql(bob, START, {"c": c})["data"]["startSettleUp"]
    assert started["settleUp"]["transfers"] == [{"debtorId": user_gid(cyd.pk),
                                                 "creditorId": user_gid(ada.pk), "amount": 300,
                                                 "paid": False}]
    done = gql(cyd, PAY_SETTLE, {"s": started["settleUp"]["id"]})["data"]["paySettleUp"]
    assert done["errors"] == [] and done["settleUp"]["status"] == "COMPLETED"
    assert balance(ada) == (10_600, 0)
