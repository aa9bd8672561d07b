"""The wallet over GraphQL: balance, statement, sendMoney, top-up and withdrawal through the sandbox gateway."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from backend.accounts.ids import decode_user, user_gid
from backend.accounts.models import User
from backend.core import clock
from backend.core.ids import encode_id
from backend.notifications.models import Notification
from backend.wallet import services
from backend.wallet.models import BankOperation, LedgerAccount
from backend.wallet.selectors import reconcile, system_balance
from backend.wallet.tasks import recheck_pending_bank_operations
from tests.conftest import befriend

from .conftest import fund, new_user, snapshot

pytestmark = pytest.mark.django_db

WALLET = "{ myWallet { id balance held available isFrozen } }"
STATEMENT = """
query Statement($first: Int, $after: String) {
  myWallet {
    statement(first: $first, after: $after) {
      edges { cursor node { id entryId kind direction amount balanceAfter memo createdAt
                            counterparty { kind displayName avatarUrl userId } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""
SEND = """
mutation Send($to: ID!, $amount: Fen!, $key: String!, $memo: String) {
  sendMoney(recipientId: $to, amount: $amount, idempotencyKey: $key, memo: $memo) {
    replayed
    transfer { id entryId amount balanceAfter memo counterparty { kind displayName userId } }
    wallet { available held balance }
    errors { field code message }
  }
}
"""
TOP_UP = """
mutation TopUp($amount: Fen!, $key: String!) {
  topUp(amount: $amount, idempotencyKey: $key) {
    replayed operation { id kind amount status failureCode } wallet { balance held available }
    errors { field code message }
  }
}
"""
WITHDRAW = TOP_UP.replace("TopUp(", "Withdraw(").replace("topUp(", "withdraw(")


@pytest.fixture
def me(gql, sign_in) -> User:
    payload = sign_in("+8613900000001")
    gql.token = payload["tokens"]["accessToken"]
    return User.objects.get(pk=decode_user(payload["viewer"]["id"], field="id"))


@pytest.fixture
def my_wallet(me) -> LedgerAccount:
    wallet = services.ensure_wallet(user_id=me.pk)
    fund(wallet, 10_000)
    return wallet


@pytest.fixture
def friend(me) -> User:
    friend = new_user("小明 Xiao Ming", avatar_url="https://img.example/xm.png")
    befriend(me, friend)  # only people one may reach can be paid (core.reach)
    return friend


def send(gql, to, amount, key="pay-key-0001", memo=None):
    return gql(SEND, {"to": to, "amount": amount, "key": key, "memo": memo})["data"]["sendMoney"]


def test_wallet_requires_sign_in(gql):
    response = gql(WALLET)
    assert response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert response["data"] is None


def test_my_wallet_shows_balance_held_and_available(gql, me, my_wallet, friend):
    friend_wallet = services.ensure_wallet(user_id=friend.pk)
    services.place_hold(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=2_500,
                        idempotency_key="test:aa-bill-1")
    wallet = gql(WALLET)["data"]["myWallet"]
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (10_000, 2_500, 7_500)
    assert wallet["id"] == encode_id("Wallet", my_wallet.pk)
    assert wallet["isFrozen"] is False


def test_send_money_moves_money_shows_the_friend_and_never_a_phone(gql, me, my_wallet, friend):
    result = send(gql, user_gid(friend.pk), 1_234, memo="电影票 movie")
    assert result["errors"] == []
    assert result["replayed"] is False
    assert result["wallet"] == {"available": 8_766, "held": 0, "balance": 8_766}
    line = result["transfer"]
    assert (line["amount"], line["balanceAfter"], line["memo"]) == (-1_234, 8_766, "电影票 movie")
    assert line["counterparty"] == {"kind": "USER", "displayName": "小明 Xiao Ming",
                                    "userId": user_gid(friend.pk)}
    assert LedgerAccount.objects.get(owner=friend).balance == 1_234
    alert = Notification.objects.get(recipient=friend, event="wallet.balance_changed")
    assert alert.payload["entry_id"] == line["entryId"]
    assert friend.phone not in json.dumps(result, ensure_ascii=False)


def test_send_money_retry_is_replayed_and_a_changed_retry_conflicts(gql, me, my_wallet, friend):
    to = user_gid(friend.pk)
    first = send(gql, to, 500, key="retry-key-42")
    before = snapshot()
    again = send(gql, to, 500, key="retry-key-42")
    assert again["errors"] == [] and again["replayed"] is True
    assert again["transfer"]["id"] == first["transfer"]["id"]
    changed = send(gql, to, 501, key="retry-key-42")
    assert [(e["code"], e["field"]) for e in changed["errors"]] == [("IDEMPOTENCY_CONFLICT", "idempotencyKey")]
    assert changed["transfer"] is None
    assert snapshot() == before
    assert LedgerAccount.objects.get(owner=friend).balance == 500


@pytest.mark.parametrize(("amount", "code"), [
    (0, "AMOUNT_INVALID"), (-100, "AMOUNT_INVALID"), (1.5, "AMOUNT_INVALID"), ("100", "AMOUNT_INVALID"),
    (True, "AMOUNT_INVALID"), (10**20, "AMOUNT_TOO_LARGE"), (2**31, "AMOUNT_TOO_LARGE"),
    (20_000, "INSUFFICIENT_FUNDS"),
])
def test_send_money_bad_amounts_come_back_as_payload_errors(gql, me, my_wallet, friend, amount, code):
    before = snapshot()
    result = send(gql, user_gid(friend.pk), amount)
    assert [e["code"] for e in result["errors"]] == [code]
    assert result["errors"][0]["field"] == "amount"
    assert snapshot() == before


def test_amount_literals_in_the_document_are_checked_the_same_way(gql, me, my_wallet, friend):
    to = user_gid(friend.pk)
    for literal, code in (("12.5", "AMOUNT_INVALID"), ('"12"', "AMOUNT_INVALID"),
                          ("99999999999999999999", "AMOUNT_TOO_LARGE")):
        doc = (f'mutation {{ sendMoney(recipientId: "{to}", amount: {literal}, idempotencyKey: "lit-key-01") '
               "{ errors { code } } }")
        assert gql(doc)["data"]["sendMoney"]["errors"] == [{"code": code}]


def test_send_money_to_nobody_to_myself_or_with_a_foreign_id_type(gql, me, my_wallet, friend):
    before = snapshot()
    cases = [
        (user_gid(987_654), "NOT_FOUND"),
        (encode_id("Wallet", friend.pk), "NOT_FOUND"),  # an id of another type is not a user
        ("not-a-global-id", "NOT_FOUND"),
        (user_gid(me.pk), "SELF_TRANSFER"),
    ]
    for to, code in cases:
        result = send(gql, to, 100)
        assert [(e["code"], e["field"]) for e in result["errors"]] == [(code, "recipientId")], to
    assert snapshot() == before


def test_send_money_to_a_frozen_wallet(gql, me, my_wallet, friend):
    friend_wallet = services.ensure_wallet(user_id=friend.pk)
    services.set_frozen(account_id=friend_wallet.pk, frozen=True, reason="police request")
    before = snapshot()
    errors = send(gql, user_gid(friend.pk), 100)["errors"]
    # A generic refusal: the payer learns nothing about the recipient's account state.
    assert [e["code"] for e in errors] == ["PAYMENT_DECLINED"] and "frozen" not in errors[0]["message"].lower()
    assert snapshot() == before


def test_money_mutations_are_rate_limited_per_user(gql, me, my_wallet, friend, settings):
    settings.QUANZI_WALLET = {"MONEY_MUTATIONS_PER_MINUTE": 3}
    to = user_gid(friend.pk)
    codes = [send(gql, to, 1, key=f"rate-key-{i:04d}")["errors"] for i in range(4)]
    assert codes[:3] == [[], [], []]
    assert [e["code"] for e in codes[3]] == ["RATE_LIMITED"]
    assert LedgerAccount.objects.get(owner=friend).balance == 3


# --- statement --------------------------------------------------------------------------------------


def test_statement_pages_newest_first_with_cursors(gql, me, my_wallet, friend):
    friend_wallet = services.ensure_wallet(user_id=friend.pk)
    for i in range(24):
        services.transfer(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=i + 1,
                          idempotency_key=f"test:st-{i}", memo=f"#{i}")
    seen, after, pages = [], None, 0
    while True:
        page = gql(STATEMENT, {"first": 10, "after": after})["data"]["myWallet"]["statement"]
        pages += 1
        seen += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == 3 and len(seen) == 25  # 24 payments + the funding top-up
    assert [line["memo"] for line in seen[:3]] == ["#23", "#22", "#21"]
    assert seen[-1]["kind"] == "top_up" and seen[-1]["counterparty"]["kind"] == "BANK"
    assert seen[0]["balanceAfter"] == 10_000 - sum(range(1, 25))
    assert all(line["direction"] == "OUT" and line["counterparty"]["displayName"] == "小明 Xiao Ming"
               for line in seen[:24])
    assert len({line["id"] for line in seen}) == 25


def test_statement_page_size_is_capped_at_100(gql, me, my_wallet, friend):
    friend_wallet = services.ensure_wallet(user_id=friend.pk)
    for i in range(105):
        services.transfer(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=1,
                          idempotency_key=f"test:cap-{i}")
    too_many = gql(STATEMENT, {"first": 500})
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"
    page = gql(STATEMENT, {"first": 100})["data"]["myWallet"]["statement"]
    assert len(page["edges"]) == 100 and page["pageInfo"]["hasNextPage"] is True


def test_statement_lists_only_my_wallet(gql, me, my_wallet, friend):
    other, stranger = services.ensure_wallet(user_id=friend.pk), services.ensure_wallet(user_id=new_user().pk)
    fund(other, 900)
    services.transfer(source_id=other.pk, destination_id=stranger.pk, amount=900, idempotency_key="test:theirs")
    lines = gql(STATEMENT, {"first": 100})["data"]["myWallet"]["statement"]["edges"]
    assert len(lines) == 1  # only my own funding


def test_bad_cursor_is_an_error_with_a_code(gql, me, my_wallet):
    response = gql(STATEMENT, {"first": 5, "after": "bm9wZQ=="})
    assert response["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


def test_statement_costs_the_same_queries_for_5_or_60_lines(gql, me, my_wallet, django_assert_max_num_queries):
    others = [services.ensure_wallet(user_id=new_user(f"Friend {i}").pk) for i in range(6)]
    for i in range(4):
        services.transfer(source_id=my_wallet.pk, destination_id=others[i % 6].pk, amount=1,
                          idempotency_key=f"test:nq-{i}")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert len(gql(STATEMENT, {"first": 100})["data"]["myWallet"]["statement"]["edges"]) == 5
    for i in range(4, 59):
        services.transfer(source_id=my_wallet.pk, destination_id=others[i % 6].pk, amount=1,
                          idempotency_key=f"test:nq-{i}")
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(gql(STATEMENT, {"first": 100})["data"]["myWallet"]["statement"]["edges"]) == 60


# --- top-up and withdrawal through the SANDBOX gateway --------------------------------------------


def test_top_up_credits_the_wallet_and_alerts(gql, me):
    result = gql(TOP_UP, {"amount": 50_000, "key": "topup-key-1"})["data"]["topUp"]
    assert result["errors"] == []
    assert result["operation"]["status"] == "SUCCEEDED" and result["operation"]["kind"] == "TOP_UP"
    assert result["wallet"]["available"] == 50_000
    alert = Notification.objects.get(recipient=me, event="wallet.balance_changed")
    assert "收入 ¥500.00" in alert.body and "银行卡" in alert.body
    again = gql(TOP_UP, {"amount": 50_000, "key": "topup-key-1"})["data"]["topUp"]
    assert again["replayed"] is True and again["wallet"]["available"] == 50_000
    assert reconcile().ok


def test_declined_top_up_moves_nothing(gql, me):
    result = gql(TOP_UP, {"amount": 1_044, "key": "topup-key-2"})["data"]["topUp"]
    assert result["errors"] == []
    assert result["operation"]["status"] == "FAILED"
    assert result["operation"]["failureCode"] == "SANDBOX_DECLINED"
    assert result["wallet"]["balance"] == 0
    assert not Notification.objects.filter(recipient=me, event="wallet.balance_changed").exists()
    assert Notification.objects.filter(recipient=me, event="wallet.bank_operation_failed").count() == 1


def test_withdrawal_is_a_hold_posted_when_the_bank_confirms(gql, me, my_wallet):
    result = gql(WITHDRAW, {"amount": 3_000, "key": "withdraw-key-1"})["data"]["withdraw"]
    assert result["errors"] == []
    assert result["operation"]["status"] == "SUCCEEDED"
    assert result["wallet"] == {"balance": 7_000, "held": 0, "available": 7_000}
    operation = BankOperation.objects.get()
    assert operation.hold.status == "posted" and operation.entry.hold_id == operation.hold_id
    assert system_balance(LedgerAccount.Kind.EXTERNAL_BANK) == -7_000  # over its shards
    assert reconcile().ok


def test_declined_withdrawal_voids_the_hold(gql, me, my_wallet):
    result = gql(WITHDRAW, {"amount": 2_044, "key": "withdraw-key-2"})["data"]["withdraw"]
    assert result["operation"]["status"] == "FAILED"
    assert result["wallet"] == {"balance": 10_000, "held": 0, "available": 10_000}
    assert BankOperation.objects.get().hold.status == "voided"


def test_withdrawal_without_an_answer_stays_held_until_the_recheck(gql, me, my_wallet, settings):
    result = gql(WITHDRAW, {"amount": 2_055, "key": "withdraw-key-3"})["data"]["withdraw"]
    assert result["operation"]["status"] == "PENDING"
    assert result["wallet"] == {"balance": 10_000, "held": 2_055, "available": 7_945}
    # Nothing can spend the held money meanwhile.
    assert [e["code"] for e in gql(WITHDRAW, {"amount": 8_000, "key": "withdraw-key-4"})["data"]["withdraw"]
            ["errors"]] == ["INSUFFICIENT_FUNDS"]
    assert recheck_pending_bank_operations() == 0  # too early to ask again
    clock.advance(dt.timedelta(seconds=61))
    assert recheck_pending_bank_operations() == 1
    wallet = gql(WALLET)["data"]["myWallet"]
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (7_945, 0, 7_945)
    assert recheck_pending_bank_operations() == 0
    assert reconcile().ok


def test_a_client_retry_of_an_unanswered_top_up_settles_it_once(gql, me):
    first = gql(TOP_UP, {"amount": 755, "key": "topup-key-3"})["data"]["topUp"]
    assert first["operation"]["status"] == "PENDING" and first["wallet"]["balance"] == 0
    retry = gql(TOP_UP, {"amount": 755, "key": "topup-key-3"})["data"]["topUp"]
    assert retry["replayed"] is True and retry["operation"]["status"] == "SUCCEEDED"
    assert retry["operation"]["id"] == first["operation"]["id"]
    assert gql(TOP_UP, {"amount": 755, "key": "topup-key-3"})["data"]["topUp"]["wallet"]["balance"] == 755


def test_withdrawal_beyond_the_balance_changes_nothing(gql, me, my_wallet):
    before = snapshot()
    result = gql(WITHDRAW, {"amount": 10_001, "key": "withdraw-key-5"})["data"]["withdraw"]
    assert [e["code"] for e in result["errors"]] == ["INSUFFICIENT_FUNDS"]
    assert snapshot() == before


# --- pending holds ------------------------------------------------------------------------------------

PENDING = "{ myWallet { held pendingHolds { id kind amount memo createdAt expiresAt } } }"


def test_a_withdrawal_in_flight_shows_as_a_pending_hold_until_the_bank_answers(gql, me, my_wallet):
    assert gql(PENDING)["data"]["myWallet"] == {"held": 0, "pendingHolds": []}
    gql(WITHDRAW, {"amount": 2_055, "key": "withdraw-key-p1"})  # the bank's answer is lost: pending
    wallet = gql(PENDING)["data"]["myWallet"]
    assert wallet["held"] == 2_055
    [line] = wallet["pendingHolds"]
    assert (line["kind"], line["amount"], line["expiresAt"]) == ("withdrawal", 2_055, None)
    assert "Withdrawal" in line["memo"] and line["createdAt"]
    clock.advance(dt.timedelta(seconds=61))
    recheck_pending_bank_operations()
    assert gql(PENDING)["data"]["myWallet"] == {"held": 0, "pendingHolds": []}


def test_pending_holds_list_only_mine_newest_first(gql, me, my_wallet, friend):
    friend_wallet = services.ensure_wallet(user_id=friend.pk)
    fund(friend_wallet, 5_000)
    services.place_hold(source_id=friend_wallet.pk, destination_id=my_wallet.pk, amount=999,
                        idempotency_key="test:theirs-hold")  # money held *for* me is not mine to see
    services.place_hold(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=100,
                        idempotency_key="test:mine-1", kind="red_packet", memo="恭喜发财")
    services.place_hold(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=200,
                        idempotency_key="test:mine-2")
    voided = services.place_hold(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=300,
                                 idempotency_key="test:mine-3").hold
    services.void_hold(hold_id=voided.pk, idempotency_key="test:void-mine-3")
    wallet = gql(PENDING)["data"]["myWallet"]
    assert [(h["kind"], h["amount"], h["memo"]) for h in wallet["pendingHolds"]] == [
        ("hold", 200, ""), ("red_packet", 100, "恭喜发财")]
    assert wallet["held"] == 300
    assert gql("{ myWallet { pendingHolds(first: 101) { id } } }")["errors"][0]["extensions"]["code"] == (
        "INVALID_PAGE_SIZE")


def test_pending_holds_cost_the_same_queries_for_1_or_30(gql, me, my_wallet, friend, django_assert_max_num_queries):
    friend_wallet = services.ensure_wallet(user_id=friend.pk)
    services.place_hold(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=1,
                        idempotency_key="test:nq-hold-0")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        assert len(gql(PENDING)["data"]["myWallet"]["pendingHolds"]) == 1
    for i in range(1, 30):
        services.place_hold(source_id=my_wallet.pk, destination_id=friend_wallet.pk, amount=1,
                            idempotency_key=f"test:nq-hold-{i}")
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(gql(PENDING)["data"]["myWallet"]["pendingHolds"]) == 30


def test_replays_do_not_use_up_the_money_rate_limit(gql, me, my_wallet, friend, settings):
    settings.QUANZI_WALLET = {"MONEY_MUTATIONS_PER_MINUTE": 2, "REPLAYS_PER_MINUTE": 5}
    seconds_into_window = time.time() % 60  # the limits count per calendar minute: stay inside one
    if seconds_into_window > 45:
        time.sleep(60.5 - seconds_into_window)
    to = user_gid(friend.pk)
    assert send(gql, to, 1, key="replay-key-0001")["errors"] == []
    for _ in range(3):  # the phone retries the same payment: replayed, not counted as new payments
        again = send(gql, to, 1, key="replay-key-0001")
        assert again["errors"] == [] and again["replayed"] is True
    assert send(gql, to, 1, key="replay-key-0002")["errors"] == []  # the 2nd real payment still fits
    assert [e["code"] for e in send(gql, to, 1, key="replay-key-0003")["errors"]] == ["RATE_LIMITED"]
    assert LedgerAccount.objects.get(owner=friend).balance == 2
    # A changed request under a recorded key moves nothing either way (conflict), and a flood of replays
    # is throttled by its own bucket.
    assert [e["code"] for e in send(gql, to, 7, key="replay-key-0001")["errors"]] == ["IDEMPOTENCY_CONFLICT"]
    assert send(gql, to, 1, key="replay-key-0002")["replayed"] is True  # the 5th replay this minute
    assert [e["code"] for e in send(gql, to, 1, key="replay-key-0002")["errors"]] == ["RATE_LIMITED"]
    assert LedgerAccount.objects.get(owner=friend).balance == 2
