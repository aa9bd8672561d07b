"""A payee who blocked the payer: every payment to them is declined with the generic PAYMENT_DECLINED (the payer
learns nothing about the block), and nothing moves."""

from __future__ import annotations

import pytest

from backend.circles import services as circles
from backend.payments import services
from backend.wallet import services as wallet
from tests.conftest import open_direct_between_friends

from .conftest import codes, fund, new_user, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def blocked():
    ada, bob = new_user("Ada"), new_user("Bob")
    fund(ada, 10_000)
    direct = open_direct_between_friends(ada, bob)
    circles.block_user(user=bob, other_id=ada.pk)
    return ada, bob, direct


def test_every_payment_to_someone_who_blocked_you_is_declined_and_moves_nothing(blocked):
    ada, bob, direct = blocked
    before = snapshot()
    assert codes(services.send_transfer, sender=ada, conversation_id=direct.pk, amount=500,
                 idempotency_key="blocked-transfer-1") == "PAYMENT_DECLINED"
    assert codes(services.send_red_packet, sender=ada, conversation_id=direct.pk, kind="fixed", amount=500,
                 count=1, idempotency_key="blocked-packet-1") == "PAYMENT_DECLINED"
    # sendMoney names the payee by id: someone you may not reach is answered like nobody at all
    assert codes(wallet.send_money, sender=ada, recipient_id=bob.pk, amount=500,
                 idempotency_key="blocked-send-1") == "NOT_FOUND"
    assert snapshot() == before


def test_the_blocker_may_still_pay_and_unblocking_lets_payments_through(blocked):
    ada, bob, direct = blocked
    fund(bob, 1_000)
    transfer, _ = services.send_transfer(sender=bob, conversation_id=direct.pk, amount=300,
                                         idempotency_key="blocker-pays-1")
    assert transfer.status == "pending"
    circles.unblock_user(user=bob, other_id=ada.pk)
    transfer, _ = services.send_transfer(sender=ada, conversation_id=direct.pk, amount=300,
                                         idempotency_key="after-unblock-1")
    assert transfer.status == "pending"
