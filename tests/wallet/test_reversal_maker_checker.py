"""Reversing a ledger entry takes two staff members: one asks (with a reason), another approves."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from backend.core.errors import DomainError
from backend.core.models import AdminAuditEntry
from backend.wallet import services
from backend.wallet.models import JournalEntry, LedgerAccount, ReversalRequest
from backend.wallet.selectors import reconcile

from .conftest import new_user


def staff_member(name: str, *, approver: bool = True):
    user = new_user(name, is_staff=True)
    codenames = ["view_reversalrequest", "add_reversalrequest", "view_journalentry"]
    if approver:
        codenames.append("approve_reversalrequest")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def entry(alice_wallet, bob_wallet) -> JournalEntry:
    return services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=400,
                             idempotency_key="test:mc-1").entry


def balance(wallet: LedgerAccount) -> int:
    return LedgerAccount.objects.get(pk=wallet.pk).balance


@pytest.mark.django_db
def test_one_asks_another_approves_and_the_entry_is_reversed_once(entry, alice_wallet, monkeypatch):
    maker, checker = staff_member("Maker"), staff_member("Checker")
    request = services.request_reversal(entry_id=entry.pk, requested_by=maker, reason="duplicate transfer, ticket 88")
    assert balance(alice_wallet) == 10_000 - 400  # nothing moved yet
    with pytest.raises(services.FourEyesRequired):
        services.approve_reversal(request_id=request.pk, approver=maker)
    assert not JournalEntry.objects.filter(reverses=entry).exists()

    calls = []
    real = services.reverse_entry
    monkeypatch.setattr(services, "reverse_entry", lambda **kw: calls.append(kw) or real(**kw))
    approved = services.approve_reversal(request_id=request.pk, approver=checker)
    again = services.approve_reversal(request_id=request.pk, approver=checker)
    assert len(calls) == 1 and calls[0]["initiated_by_id"] == checker.pk
    assert approved.status == again.status == "approved" and again.reversal_id == approved.reversal_id
    assert balance(alice_wallet) == 10_000
    assert JournalEntry.objects.filter(reverses=entry).count() == 1
    assert reconcile().ok


@pytest.mark.django_db
def test_requests_need_a_reason_staff_and_an_entry_not_already_reversed(entry, alice):
    maker, checker = staff_member("Maker"), staff_member("Checker")
    for reason in ("", "   ", None, "x" * 501):
        with pytest.raises(DomainError):
            services.request_reversal(entry_id=entry.pk, requested_by=maker, reason=reason)
    with pytest.raises(DomainError):
        services.request_reversal(entry_id=entry.pk, requested_by=alice, reason="I want my money back")
    first = services.request_reversal(entry_id=entry.pk, requested_by=maker, reason="wrong payee")
    with pytest.raises(services.ReversalAlreadyRequested):
        services.request_reversal(entry_id=entry.pk, requested_by=checker, reason="wrong payee")
    services.reject_reversal(request_id=first.pk, checker=checker)
    with pytest.raises(services.ReversalRequestNotPending):
        services.approve_reversal(request_id=first.pk, approver=checker)
    assert not JournalEntry.objects.filter(reverses=entry).exists()
    second = services.request_reversal(entry_id=entry.pk, requested_by=maker, reason="wrong payee, confirmed")
    services.approve_reversal(request_id=second.pk, approver=checker)
    with pytest.raises(services.EntryAlreadyReversed):
        services.request_reversal(entry_id=entry.pk, requested_by=maker, reason="again")


@pytest.mark.django_db
def test_the_admin_files_and_approves_requests_by_two_people(client, entry, alice_wallet):
    maker, checker = staff_member("Maker"), staff_member("Checker")
    client.force_login(maker)
    # The entry list offers "request a reversal", which opens the request form for that entry.
    to_form = client.post("/admin/wallet/journalentry/", {"action": "request_reversal",
                                                          "_selected_action": [entry.pk]})
    assert to_form.status_code == 302 and to_form["Location"].endswith(f"/add/?entry={entry.pk}")
    assert client.post("/admin/wallet/reversalrequest/add/", {"entry": entry.pk, "reason": " "}).status_code == 200
    filed = client.post("/admin/wallet/reversalrequest/add/", {"entry": entry.pk, "reason": "duplicate, ticket 7"})
    assert filed.status_code == 302
    request = ReversalRequest.objects.get()
    assert (request.requested_by_id, request.status) == (maker.pk, "pending")
    client.post("/admin/wallet/reversalrequest/", {"action": "approve", "_selected_action": [request.pk]})
    assert ReversalRequest.objects.get().status == "pending" and balance(alice_wallet) == 9_600  # not by the maker
    client.force_login(checker)
    client.post("/admin/wallet/reversalrequest/", {"action": "approve", "_selected_action": [request.pk]})
    assert ReversalRequest.objects.get().status == "approved" and balance(alice_wallet) == 10_000
    # Both steps are in the audit log.
    logged = list(AdminAuditEntry.objects.filter(model_label="wallet.reversalrequest").order_by("id")
                  .values_list("actor_id", "action", "action_name"))
    assert logged[0] == (maker.pk, "add", "") and logged[-1] == (checker.pk, "action", "approve")
    assert AdminAuditEntry.objects.filter(model_label="wallet.reversalrequest", action="action",
                                          after__status="approved").count() == 1
    # The direct "reverse" action is gone: entries are reversed through requests only.
    assert client.post("/admin/wallet/journalentry/", {"action": "reverse", "_selected_action": [entry.pk]}
                       ).status_code in (200, 302)
    assert JournalEntry.objects.filter(reverses=entry).count() == 1


@pytest.mark.django_db
def test_a_staff_member_without_the_approve_permission_cannot_approve(client, entry, alice_wallet):
    maker, clerk = staff_member("Maker"), staff_member("Clerk", approver=False)
    request = services.request_reversal(entry_id=entry.pk, requested_by=maker, reason="wrong amount")
    client.force_login(clerk)
    client.post("/admin/wallet/reversalrequest/", {"action": "approve", "_selected_action": [request.pk]})
    assert ReversalRequest.objects.get().status == "pending" and balance(alice_wallet) == 9_600


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_post_one_reversal(require_postgres, alice_wallet, bob_wallet):
    entry = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=250,
                              idempotency_key="test:mc-race").entry
    maker = staff_member("Maker")
    checkers = [staff_member(f"Checker {n}") for n in range(6)]
    request = services.request_reversal(entry_id=entry.pk, requested_by=maker, reason="race test")
    start = threading.Barrier(len(checkers))
    escaped: list[BaseException] = []

    def approve(checker) -> None:
        try:
            start.wait()
            services.approve_reversal(request_id=request.pk, approver=checker)
        except BaseException as exc:
            escaped.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(c,)) for c in checkers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert escaped == []
    assert JournalEntry.objects.filter(reverses=entry).count() == 1
    assert balance(alice_wallet) == 10_000 and balance(bob_wallet) == bob_wallet.balance
    assert reconcile().ok
