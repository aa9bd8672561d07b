"""Friend transfers (hold → accept / decline / 24 h refund), daily limits by KYC level, and the risk-account
check (融安e信) on every payment to a person, including the wallet's plain sendMoney."""

import datetime as dt

import pytest

from backend.accounts.ids import user_gid
from backend.chat import events
from backend.chat import services as chat
from backend.chat.models import Message
from backend.core import clock
from backend.core.ids import encode_id
from backend.notifications.models import Notification
from backend.payments import services
from backend.wallet import risk
from backend.wallet import services as wallet
from backend.wallet.models import RiskListEntry
from tests.conftest import open_direct_between_friends

from .conftest import assert_ledger_ok, balance, codes, group_of, new_user, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(people):
    ada, bob, *_ = people
    ada.kyc_level = bob.kyc_level = 2
    ada.save()
    bob.save()
    return ada, bob, open_direct_between_friends(ada, bob)


def send(sender, conversation, amount=1_000, key="transfer-01", **kw):
    return services.send_transfer(sender=sender, conversation_id=conversation.pk, amount=amount,
                                  idempotency_key=key, **kw)[0]


def state(transfer) -> dict:
    return events.card_document(Message.objects.get(pk=transfer.message_id))["state"]


def test_transfer_is_held_then_accepted_once(pair):
    ada, bob, direct = pair
    transfer = send(ada, direct, note="午饭钱")
    assert balance(ada) == (10_000, 1_000) and balance(bob) == (10_000, 0)
    assert state(transfer)["status"] == "pending" and state(transfer)["note"] == "午饭钱"
    assert Notification.objects.filter(recipient=bob, event="payments.transfer_received").exists()
    assert codes(services.accept_transfer, user=ada, transfer_id=transfer.pk) == "NOT_PARTICIPANT"
    services.accept_transfer(user=bob, transfer_id=transfer.pk)
    assert balance(ada) == (9_000, 0) and balance(bob) == (11_000, 0)
    assert codes(services.accept_transfer, user=bob, transfer_id=transfer.pk) == "ALREADY_RESOLVED"
    assert codes(services.decline_transfer, user=bob, transfer_id=transfer.pk) == "ALREADY_RESOLVED"
    transfer.refresh_from_db()
    assert transfer.status == "accepted" and state(transfer)["status"] == "accepted" and transfer.card_version == 1
    assert Notification.objects.filter(recipient=ada, event="payments.transfer_accepted").exists()
    with clock.frozen_at(clock.now() + dt.timedelta(hours=25)):
        assert services.expire_transfers() == 0
    assert_ledger_ok()


def test_declined_or_unaccepted_transfers_come_back_exactly_once(pair):
    ada, bob, direct = pair
    declined = send(ada, direct, amount=300, key="transfer-02")
    services.decline_transfer(user=bob, transfer_id=declined.pk)
    assert balance(ada) == (10_000, 0)
    late = send(ada, direct, amount=400, key="transfer-03")
    with clock.frozen_at(clock.now() + dt.timedelta(hours=24, seconds=1)):
        assert codes(services.accept_transfer, user=bob, transfer_id=late.pk) == "TRANSFER_EXPIRED"
        assert services.expire_transfers() == 1
        assert services.expire_transfers() == 0
    late.refresh_from_db()
    assert late.status == "refunded" and state(late)["status"] == "refunded" and balance(ada) == (10_000, 0)
    assert Notification.objects.filter(recipient=ada, event="payments.transfer_refunded").count() == 1
    assert_ledger_ok()


def test_daily_limit_follows_the_kyc_table(pair, settings):
    ada, bob, direct = pair
    settings.QUANZI_PAYMENTS = {"TRANSFER_DAILY_LIMIT_BY_KYC": {0: 100, 1: 500, 2: 1_500, 3: 9_000}}
    send(ada, direct, amount=1_000, key="limit-0001")
    declined = send(ada, direct, amount=500, key="limit-0002")
    before = snapshot()
    assert codes(send, sender=ada, conversation=direct, amount=501, key="limit-0003") == "DAILY_LIMIT_EXCEEDED"
    assert snapshot() == before
    services.decline_transfer(user=bob, transfer_id=declined.pk)  # declined ones free the limit again
    send(ada, direct, amount=500, key="limit-0004")
    ada.kyc_level = 0
    ada.save()
    assert codes(send, sender=ada, conversation=direct, amount=1, key="limit-0005") == "DAILY_LIMIT_EXCEEDED"


def test_transfer_bad_input_moves_nothing(pair):
    ada, bob, direct = pair
    cyd, eve = new_user("Cyd"), new_user("Eve")
    group = group_of(ada, bob, cyd)
    before = snapshot()
    assert codes(send, sender=ada, conversation=group, key="bad-00001") == "NOT_FOUND"  # whom, in a group?
    assert codes(send, sender=ada, conversation=group, key="bad-00002", recipient_id=eve.pk) == "NOT_FOUND"
    assert codes(send, sender=ada, conversation=group, key="bad-00003", recipient_id=ada.pk) == "SELF_TRANSFER"
    assert codes(send, sender=eve, conversation=direct, key="bad-00004") == "NOT_FOUND"
    assert codes(send, sender=ada, conversation=direct, key="bad-00005", amount=0) == "AMOUNT_INVALID"
    assert codes(send, sender=ada, conversation=direct, key="bad-00006", amount=10**6) == "INSUFFICIENT_FUNDS"
    assert codes(send, sender=ada, conversation=direct, key="bad-00007", note="a\x00b") == "MEMO_INVALID"
    assert snapshot() == before
    to_cyd = send(ada, group, key="good-0001", recipient_id=cyd.pk)
    assert codes(services.accept_transfer, user=eve, transfer_id=to_cyd.pk) == "NOT_FOUND"
    assert codes(services.accept_transfer, user=bob, transfer_id=to_cyd.pk) == "NOT_PARTICIPANT"
    chat.leave_conversation(conversation_id=group.pk, user=cyd)
    assert codes(services.accept_transfer, user=cyd, transfer_id=to_cyd.pk) == "NOT_FOUND"


def test_frozen_payee_is_a_generic_refusal(pair):
    ada, bob, direct = pair
    wallet.set_frozen(account_id=wallet.ensure_wallet(user_id=bob.pk).pk, frozen=True, reason="police")
    before = snapshot()
    with pytest.raises(wallet.PaymentDeclined) as err:
        send(ada, direct)
    assert "frozen" not in err.value.message.lower() and snapshot() == before


def report(user, level):
    return RiskListEntry.objects.create(account=wallet.ensure_wallet(user_id=user.pk), source="police",
                                        level=level, reported_on=dt.date(2026, 11, 1))


def test_risk_block_refuses_and_warn_needs_a_bound_confirmation(pair):
    ada, bob, direct = pair
    entry = report(bob, "block")
    before = snapshot()
    assert codes(send, sender=ada, conversation=direct) == "PAYEE_RISK_BLOCKED"
    assert codes(wallet.send_money, sender=ada, recipient_id=bob.pk, amount=100,
                 idempotency_key="plain-0001") == "PAYEE_RISK_BLOCKED"
    assert codes(services.send_red_packet, sender=ada, conversation_id=direct.pk, kind="fixed", amount=100,
                 count=1, idempotency_key="packet-001") == "PAYEE_RISK_BLOCKED"
    assert snapshot() == before
    entry.level = "warn"
    entry.save()
    with pytest.raises(risk.PayeeRiskWarning) as warned:
        send(ada, direct, amount=700)
    token = warned.value.confirmation_token
    assert snapshot() == before
    # The token confirms this payer, payee and amount only.
    assert codes(send, sender=ada, conversation=direct, amount=701, risk_confirmation=token) == "PAYEE_RISK_WARNING"
    assert codes(send, sender=ada, conversation=direct, amount=700, risk_confirmation="forged") \
        == "PAYEE_RISK_WARNING"
    transfer = send(ada, direct, amount=700, risk_confirmation=token)
    assert transfer.amount == 700
    with clock.frozen_at(clock.now() + dt.timedelta(seconds=risk.CONFIRMATION_SECONDS + 1)):
        assert codes(send, sender=ada, conversation=direct, amount=700, key="transfer-99",
                     risk_confirmation=token) == "PAYEE_RISK_WARNING"


def test_risk_list_matches_the_payee_phone_number_too(pair):
    from backend.accounts.models import phone_index

    ada, bob, direct = pair
    RiskListEntry.objects.create(phone_index=phone_index(bob.phone), phone_masked="x", source="bank",
                                 level="block", reported_on=dt.date(2026, 11, 1))
    assert codes(send, sender=ada, conversation=direct) == "PAYEE_RISK_BLOCKED"


SEND_MONEY = """mutation($to: ID!, $c: String) { sendMoney(recipientId: $to, amount: 250, idempotencyKey: "risk-gql-1",
  riskConfirmation: $c) { errors { code } riskWarning { message confirmationToken } transfer { amount } } }"""
SEND_TRANSFER = """mutation($c: ID!, $t: String) { sendTransfer(conversationId: $c, amount: 250,
  idempotencyKey: "gql-transfer-1", note: "房租", riskConfirmation: $t) {
  errors { code } riskWarning { confirmationToken } transfer { id status amount note } } }"""
ACCEPT = """mutation($id: ID!) { acceptTransfer(transferId: $id) { errors { code } transfer { status } } }"""


def test_graphql_risk_warning_round_trip_and_transfer_accept(pair, client):
    from tests.chat.conftest import token_for

    ada, bob, direct = pair
    eve = new_user("Eve")
    report(bob, "warn")

    def gql(user, query, variables):
        return client.post("/graphql/", {"query": query, "variables": variables}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token_for(user)}").json()["data"]

    warned = gql(ada, SEND_MONEY, {"to": user_gid(bob)})["sendMoney"]
    assert [e["code"] for e in warned["errors"]] == ["PAYEE_RISK_WARNING"] and warned["transfer"] is None
    token = warned["riskWarning"]["confirmationToken"]
    paid = gql(ada, SEND_MONEY, {"to": user_gid(bob), "c": token})["sendMoney"]
    assert paid["errors"] == [] and paid["transfer"]["amount"] == -250

    c = encode_id("Conversation", direct.pk)
    first = gql(ada, SEND_TRANSFER, {"c": c})["sendTransfer"]
    assert first["errors"][0]["code"] == "PAYEE_RISK_WARNING"
    sent = gql(ada, SEND_TRANSFER, {"c": c, "t": first["riskWarning"]["confirmationToken"]})["sendTransfer"]
    assert sent["errors"] == [] and sent["transfer"]["status"] == "PENDING" and sent["transfer"]["note"] == "房租"
    transfer_id = sent["transfer"]["id"]
    assert gql(eve, ACCEPT, {"id": transfer_id})["acceptTransfer"]["errors"] == [{"code": "NOT_FOUND"}]
    assert gql(ada, ACCEPT, {"id": transfer_id})["acceptTransfer"]["errors"] == [{"code": "NOT_PARTICIPANT"}]
    assert gql(bob, ACCEPT, {"id": transfer_id})["acceptTransfer"]["transfer"]["status"] == "ACCEPTED"
