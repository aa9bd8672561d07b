"""The database connection dropped in the middle of a money operation (PostgreSQL).

A hook placed between two statements of a transfer, a red packet (send and grab) or an AA payment terminates
this very connection from a second one (`pg_terminate_backend`), so the operation's next statement finds it
dead. Then: nothing is half-done (every table a money action touches is as before), the ledger reconciles,
and the retry with the same idempotency key moves the money exactly once — and a second retry not again.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection

from backend.chat.models import Message
from backend.payments import services
from backend.payments.services import bills, red_packets, transfers
from backend.wallet import services as wallet_services
from tests.payments.conftest import assert_ledger_ok, balance, fund, group_of, new_user, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def drop_this_connection() -> None:
    """Terminate the backend serving Django's connection, from a second connection, and wait until it is gone."""
    pid = connection.connection.info.backend_pid
    s = connection.settings_dict
    with psycopg.connect(host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432, user=s["USER"],
                         password=s["PASSWORD"] or None, dbname=s["NAME"], autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
        for _ in range(200):
            if not other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            other.execute("SELECT pg_sleep(0.01)")


def drop_before(monkeypatch, owner, name: str) -> list[int]:
    """Make `owner.name` drop the connection the first time it is called, before it runs."""
    original, calls = getattr(owner, name), []

    def hooked(*args, **kwargs):
        if not calls:
            calls.append(1)
            drop_this_connection()
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, hooked)
    return calls


def world() -> dict:
    return {**snapshot(), "messages": Message.objects.count()}


def interrupted(monkeypatch, owner, name: str, operation) -> None:
    """Run `operation` with the connection dropped before `owner.name`; it must fail and change nothing."""
    before = world()
    calls = drop_before(monkeypatch, owner, name)
    try:
        operation()
    except OperationalError:
        pass
    else:
        raise AssertionError(f"{name} was reached: {bool(calls)}; the operation still succeeded")
    monkeypatch.undo()
    connection.close()  # what Django does after a request whose connection broke
    assert world() == before, "a money operation was half-done"
    assert_ledger_ok()


@pytest.fixture
def money_people(require_postgres):
    ada, bob, cyd = new_user("Ada"), new_user("Bob"), new_user("Cyd")
    for user in (ada, bob, cyd):
        fund(user, 10_000)
    return ada, bob, cyd, group_of(ada, bob, cyd)


# where to cut: inside the wallet (between the hold/entry row and its legs, or after them), and after the
# ledger moved but before the card, the activity report or the notification
TRANSFER_CUTS = [(wallet_services, "_place_hold_locked"), (transfers, "post_card"), (transfers, "tell"),
                 (transfers.wallet, "place_hold")]
PACKET_CUTS = [(wallet_services, "_write_entry"), (red_packets, "post_card"),
               (red_packets.activity_hooks, "report_activity")]
GRAB_CUTS = [(red_packets, "update_card"), (wallet_services, "_write_entry")]
SHARE_CUTS = [(wallet_services, "_write_entry"), (bills, "tell"), (bills.activity_hooks, "report_activity")]


@pytest.mark.parametrize(("owner", "name"), TRANSFER_CUTS, ids=[n for _, n in TRANSFER_CUTS])
def test_a_transfer_cut_mid_way_leaves_nothing_and_its_retry_moves_money_once(monkeypatch, money_people, owner,
                                                                              name):
    ada, bob, _, group = money_people

    def send():
        return services.send_transfer(sender=ada, conversation_id=group.pk, amount=1_234, recipient_id=bob.pk,
                                      idempotency_key="transfer-00001")

    interrupted(monkeypatch, owner, name, send)
    transfer, replayed = send()
    assert not replayed and balance(ada) == (10_000, 1_234)
    after = world()
    again, replayed = send()
    assert replayed and again.pk == transfer.pk and world() == after
    services.accept_transfer(user=bob, transfer_id=transfer.pk)
    assert balance(ada) == (8_766, 0) and balance(bob) == (11_234, 0)
    assert_ledger_ok()


@pytest.mark.parametrize(("owner", "name"), PACKET_CUTS, ids=[n for _, n in PACKET_CUTS])
def test_a_red_packet_cut_mid_way_leaves_nothing_and_its_retry_moves_money_once(monkeypatch, money_people, owner,
                                                                                name):
    ada, _, _, group = money_people

    def send():
        return services.send_red_packet(sender=ada, conversation_id=group.pk, kind="lucky", amount=600, count=2,
                                        idempotency_key="packet-00001")

    interrupted(monkeypatch, owner, name, send)
    packet, replayed = send()
    assert not replayed and balance(ada) == (9_400, 0)
    after = world()
    again, replayed = send()
    assert replayed and again.pk == packet.pk and world() == after
    assert_ledger_ok()


@pytest.mark.parametrize(("owner", "name"), GRAB_CUTS, ids=[n for _, n in GRAB_CUTS])
def test_a_grab_cut_mid_way_leaves_nothing_and_the_next_grab_pays_once(monkeypatch, money_people, owner, name):
    ada, bob, _, group = money_people
    packet, _ = services.send_red_packet(sender=ada, conversation_id=group.pk, kind="fixed", amount=600, count=2,
                                         idempotency_key="packet-00002")

    interrupted(monkeypatch, owner, name, lambda: services.grab_red_packet(user=bob, packet_id=packet.pk))
    grab = services.grab_red_packet(user=bob, packet_id=packet.pk)
    assert grab.amount == 300 and balance(bob) == (10_300, 0)
    with pytest.raises(services.AlreadyGrabbed):
        services.grab_red_packet(user=bob, packet_id=packet.pk)
    assert balance(bob) == (10_300, 0)
    assert_ledger_ok()


@pytest.mark.parametrize(("owner", "name"), SHARE_CUTS, ids=[n for _, n in SHARE_CUTS])
def test_an_aa_payment_cut_mid_way_leaves_nothing_and_its_retry_pays_once(monkeypatch, money_people, owner, name):
    ada, bob, cyd, group = money_people
    bill, _ = services.create_bill(creator=ada, conversation_id=group.pk, title="火锅", amount=900, method="equal",
                                   participants=[bob.pk, cyd.pk], idempotency_key="bill-00001")
    share = bill.shares.get(participant=bob)

    interrupted(monkeypatch, owner, name, lambda: services.pay_share(user=bob, share_id=share.pk))
    services.pay_share(user=bob, share_id=share.pk)
    paid = balance(bob)
    after = world()
    services.pay_share(user=bob, share_id=share.pk)  # the retry: already paid, nothing moves
    assert world() == after and paid == (10_000 - share.amount, 0)
    assert_ledger_ok()
