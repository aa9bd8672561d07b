"""The ledger's hot path: statements per transfer, no savepoints, and the sharded external-bank account under
concurrent top-ups and withdrawals (PostgreSQL)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from backend.core.ids import encode_id
from backend.notifications.models import Notification
from backend.wallet import services
from backend.wallet.models import BankOperation, IdempotencyRecord, LedgerAccount, Leg
from backend.wallet.selectors import reconcile, system_balance

from .conftest import fund, new_user, snapshot


@pytest.mark.django_db
def test_a_transfer_is_two_statements_on_postgres(require_postgres):
    """Lock both accounts (drawing the entry's id); one statement for key lookup + entry + legs + balances + key
    record + both balance alerts. (Top level adds only BEGIN and COMMIT; inside a caller's transaction no
    SAVEPOINT.)"""
    a, b = (services.ensure_wallet(user_id=new_user().pk) for _ in range(2))
    fund(a, 10_000)
    alerts_before = Notification.objects.count()
    with CaptureQueriesContext(connection) as ctx:
        movement = services.transfer(source_id=a.pk, destination_id=b.pk, amount=100, idempotency_key="test:hot:1")
    statements = [q["sql"] for q in ctx.captured_queries]
    assert len(statements) == 2, statements
    assert "FOR UPDATE" in statements[0]
    assert "notifications_notification" in statements[1]
    assert not any("SAVEPOINT" in sql for sql in statements)
    alerts = list(Notification.objects.order_by("id")[alerts_before:])
    assert [n.recipient_id for n in alerts] == [a.owner_id, b.owner_id]  # both balance alerts, payer first
    assert "支出 ¥1.00" in alerts[0].body and "可用余额 ¥99.00" in alerts[0].body  # decrypted: AES-GCM at rest
    assert "收入 ¥1.00" in alerts[1].body and "可用余额 ¥1.00" in alerts[1].body
    assert all(n.payload["entry_id"] == encode_id("JournalEntry", movement.entry.pk) for n in alerts)
    raw = connection.cursor()
    raw.execute("SELECT body FROM notifications_notification WHERE id = %s", [alerts[0].pk])
    assert "支出" not in raw.fetchone()[0]  # the column holds ciphertext
    legs = list(movement.entry.legs.order_by("id").values_list("account_id", "amount", "balance_after"))
    assert legs == [(a.pk, -100, 9_900), (b.pk, 100, 100)]
    with CaptureQueriesContext(connection) as ctx:  # the replay: lock, the statement that finds the key, lookup
        again = services.transfer(source_id=a.pk, destination_id=b.pk, amount=100, idempotency_key="test:hot:1")
    assert again.replayed and again.entry.pk == movement.entry.pk
    assert not any(sql.lstrip().startswith("INSERT") for sql in (q["sql"] for q in ctx.captured_queries))
    assert reconcile().ok


@pytest.mark.django_db
def test_the_transfer_statements_are_prepared_once_per_connection(require_postgres):
    """Django switches psycopg's prepared statements off (prepare_threshold None), and then psycopg ignores
    even an explicit prepare=True: the statements were parsed and planned anew on every transfer (half of
    PostgreSQL's CPU per transfer). Prepared, later transfers reuse the server's statement and plan."""
    a, b = (services.ensure_wallet(user_id=new_user().pk) for _ in range(2))
    fund(a, 10_000)

    def prepared() -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, statement FROM pg_prepared_statements")
            return dict(cursor.fetchall())

    services.transfer(source_id=a.pk, destination_id=b.pk, amount=1, idempotency_key="test:prep:1")
    first = prepared()
    assert any("FOR UPDATE" in sql for sql in first.values()), first  # the account lock
    assert any("INSERT INTO wallet_journalentry" in sql for sql in first.values()), first  # the entry statement
    for n in range(2, 5):
        services.transfer(source_id=a.pk, destination_id=b.pk, amount=1, idempotency_key=f"test:prep:{n}")
    assert prepared() == first  # reused, not prepared again
    assert not any("pg_prepared_statements" in sql for sql in prepared().values())  # the ORM's cursors: never
    assert reconcile().ok


@pytest.mark.django_db
def test_a_refused_transfer_leaves_the_callers_transaction_usable(alice_wallet, bob_wallet):
    """No savepoint around a transfer: a refusal must still leave the caller's transaction as it was."""
    before = snapshot()
    with transaction.atomic():
        with pytest.raises(services.InsufficientFunds):
            services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=10_001,
                              idempotency_key="test:too-much")
        with pytest.raises(services.IdempotencyConflict):
            services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=1,
                              idempotency_key="test:first")
            services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=2,
                              idempotency_key="test:first")
        # the caller goes on in the same transaction
        services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=5,
                          idempotency_key="test:after")
    after = snapshot()
    assert after["entries"] == before["entries"] + 2  # the first "test:first" and "test:after"
    assert not IdempotencyRecord.objects.filter(key="test:too-much").exists()
    assert LedgerAccount.objects.get(pk=bob_wallet.pk).balance == 6
    assert reconcile().ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_top_ups_and_withdrawals_spread_over_the_bank_shards(require_postgres, settings):
    """16 threads top up and withdraw for different users at once. They post on several external-bank rows,
    not one; money is conserved: the bank's shards sum to minus what the wallets hold, each shard's cached
    balance is the sum of its own legs, every wallet ends with its top-ups minus its withdrawals."""
    settings.QUANZI_WALLET = {"EXTERNAL_BANK_SHARDS": 4}
    users = [new_user() for _ in range(16)]
    wallets = {u.pk: services.ensure_wallet(user_id=u.pk) for u in users}
    start = threading.Barrier(len(users))
    escaped: list[BaseException] = []
    expected: dict[int, int] = {}

    def customer(user) -> None:
        try:
            start.wait()
            net = 0
            for i in range(3):
                services.top_up(user=user, amount=1_000 + i, idempotency_key=f"topup-{user.pk}-{i}")
                net += 1_000 + i
                services.withdraw(user=user, amount=300 + i, idempotency_key=f"withdraw-{user.pk}-{i}")
                net -= 300 + i
            expected[user.pk] = net
        except BaseException as exc:  # a deadlock or any database error fails the test
            escaped.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=customer, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert escaped == []
    assert set(BankOperation.objects.values_list("status", flat=True)) == {"succeeded"}
    for user_id, wallet in wallets.items():
        wallet.refresh_from_db()
        assert (wallet.balance, wallet.held) == (expected[user_id], 0)
    shards = LedgerAccount.objects.filter(kind=LedgerAccount.Kind.EXTERNAL_BANK)
    assert sorted(shards.values_list("shard", flat=True)) == [0, 1, 2, 3]
    legs_per_shard = Counter(Leg.objects.filter(account__in=shards).values_list("account_id", flat=True))
    assert len(legs_per_shard) == 4  # every shard took part
    for wallet in wallets.values():  # each wallet's bank legs are on its own shard only
        shard = wallet.pk % 4
        assert set(Leg.objects.filter(entry__legs__account=wallet, account__in=shards)
                   .values_list("account__shard", flat=True)) == {shard}
    assert system_balance(LedgerAccount.Kind.EXTERNAL_BANK) == -sum(expected.values())
    report = reconcile()
    assert report.ok, report.problems
    assert report.system_totals[LedgerAccount.Kind.EXTERNAL_BANK] == -sum(expected.values())


@pytest.mark.django_db
def test_only_the_external_bank_is_sharded(alice_wallet):
    """The marketing budget is a real limit and stays one checked row; asking for its shard is an error."""
    with pytest.raises(ValueError):
        services.system_account(LedgerAccount.Kind.MARKETING_BUDGET, shard=1)
    assert services.external_bank_account_for(alice_wallet.pk).kind == LedgerAccount.Kind.EXTERNAL_BANK


@pytest.mark.django_db
def test_the_transfer_statements_stay_short_enough_for_psycopg_to_parse_once(require_postgres, alice_wallet,
                                                                              bob_wallet):
    """psycopg converts a statement's placeholders once and caches it only up to 4 KiB and 50 parameters; a
    bigger hot statement was parsed again on every transfer (measured: +5 % CPU per transfer)."""
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS

    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        assert len(params) <= MAX_CACHED_STATEMENT_PARAMS, (len(params), sql[:80])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=7,
                          idempotency_key="test:short")
    assert len(seen) == 2
    assert max(len(sql.encode()) for sql in seen) <= MAX_CACHED_STATEMENT_LENGTH, [len(sql) for sql in seen]


@pytest.mark.django_db(transaction=True)
def test_a_transfer_whose_alert_cannot_be_written_leaves_nothing_and_its_key_stays_usable(alice_wallet, bob_wallet,
                                                                                        monkeypatch):
    """The alerts are written by the entry's own statement (PostgreSQL) or right after it (SQLite), in its
    transaction: when one of them cannot be stored (here: a recipient that does not exist, refused by the
    foreign key at commit) the entry, its legs, both balances and the key's record are gone with it; the same
    key then pays normally. (Both databases.)"""
    before = snapshot()
    real = services._alert_items

    def broken(*args, **kwargs):
        alerts = real(*args, **kwargs)
        alerts[0]["recipient_id"] = 10**12  # no such user
        return alerts

    monkeypatch.setattr(services, "_alert_items", broken)
    with pytest.raises(IntegrityError):
        services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=300,
                          idempotency_key="test:broken-alert")
    assert snapshot() == before
    monkeypatch.setattr(services, "_alert_items", real)
    movement = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=300,
                                 idempotency_key="test:broken-alert")
    assert not movement.replayed
    after = snapshot()
    assert (after["entries"], after["notifications"]) == (before["entries"] + 1, before["notifications"] + 2)
    assert reconcile().ok


