"""Operations' admin over the ledger (entries read-only, freeze) and the sandbox gateway's guard."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from backend.accounts.models import User
from backend.wallet import services
from backend.wallet.gateway import SandboxBankGateway, get_gateway
from backend.wallet.models import JournalEntry, LedgerAccount

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(client):
    staff = User.objects.create_superuser("+8613700009999", "ops-password-2026")
    client.force_login(staff)
    return client


def test_admin_lists_accounts_and_shows_entries_read_only(ops_client, alice_wallet, bob_wallet):
    entry = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=321,
                              idempotency_key="test:admin-1").entry
    assert ops_client.get("/admin/wallet/ledgeraccount/").status_code == 200
    assert ops_client.get("/admin/wallet/journalentry/").status_code == 200
    assert ops_client.get("/admin/wallet/sandboxbankrecord/").status_code == 200
    assert ops_client.get("/admin/wallet/sandboxbankrecord/add/").status_code == 403
    page = ops_client.get(f"/admin/wallet/journalentry/{entry.pk}/change/")
    assert page.status_code == 200 and b"-321" in page.content
    assert ops_client.get("/admin/wallet/journalentry/add/").status_code == 403
    assert ops_client.post(f"/admin/wallet/journalentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    ops_client.post(f"/admin/wallet/journalentry/{entry.pk}/change/", {"memo": "edited"})
    assert JournalEntry.objects.get(pk=entry.pk).memo == ""
    assert ops_client.post(f"/admin/wallet/ledgeraccount/{alice_wallet.pk}/change/",
                           {"balance": 10**9}).status_code in (200, 302, 403)
    assert LedgerAccount.objects.get(pk=alice_wallet.pk).balance == 10_000 - 321


def test_admin_freeze_goes_through_the_service_and_no_one_reverses_alone(ops_client, alice_wallet, bob_wallet):
    entry = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=400,
                              idempotency_key="test:admin-2").entry
    # Reversals are maker–checker (test_reversal_maker_checker.py): there is no one-person "reverse" action.
    ops_client.post("/admin/wallet/journalentry/", {"action": "reverse", "_selected_action": [entry.pk]})
    assert JournalEntry.objects.filter(reverses=entry).count() == 0
    ops_client.post("/admin/wallet/ledgeraccount/", {"action": "freeze", "_selected_action": [bob_wallet.pk]})
    assert LedgerAccount.objects.get(pk=bob_wallet.pk).is_frozen is True


def test_the_sandbox_gateway_is_refused_in_production(settings):
    assert isinstance(get_gateway(), SandboxBankGateway)  # tests and DEBUG may use it
    settings.TESTING, settings.DEBUG = False, False
    with pytest.raises(ImproperlyConfigured):
        get_gateway()
    settings.QUANZI_WALLET = {"ALLOW_SANDBOX_GATEWAY": True}  # an explicit staging opt-in
    assert isinstance(get_gateway(), SandboxBankGateway)
