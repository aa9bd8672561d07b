"""Every change made in the back office is in an audit log that no staff member can edit."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import DatabaseError, transaction

from backend.accounts.models import User
from backend.core.audit import AuditedAdmin
from backend.core.models import AdminAuditEntry, AppendOnly
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount

pytestmark = pytest.mark.django_db


def entries(**filters) -> list[AdminAuditEntry]:
    return list(AdminAuditEntry.objects.filter(**filters).order_by("id"))


def test_every_registered_admin_is_audited():
    unaudited = [model._meta.label for model, model_admin in admin.site._registry.items()
                 if not isinstance(model_admin, AuditedAdmin) and model is not AdminAuditEntry]
    assert unaudited == []


def test_a_change_is_recorded_with_who_what_and_before_after(ops):
    client, staff = ops
    customer = User.objects.create_user("+8613812345678", display_name="Customer Ma")
    response = client.post(f"/admin/accounts/user/{customer.pk}/change/", {
        "display_name": "Customer Ma", "avatar_url": "", "role": "customer", "kyc_level": 3, "is_active": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    [entry] = entries(model_label="accounts.user", object_id=str(customer.pk))
    assert (entry.actor_id, entry.action) == (staff.pk, "change")
    assert entry.before == {"kyc_level": 0} and entry.after == {"kyc_level": 3}
    assert "Ops Wang" in entry.actor_label


def test_secrets_are_fingerprinted_not_copied(ops):
    client, _ = ops
    customer = User.objects.create_user("+8613812345678", "old-password-1", display_name="Ma")
    # A user's wallet (opened at sign-up) protects the user row; an unused one may go with an unused account.
    LedgerAccount.objects.filter(owner=customer).delete()
    client.post("/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [customer.pk],
                                          "post": "yes"})
    [entry] = entries(model_label="accounts.user", action="delete")
    assert "+8613812345678" not in str(entry.before) and "argon2" not in str(entry.before)
    assert entry.before["phone"].startswith("redacted:") and entry.before["display_name"] == "Ma"


def a_wallet() -> LedgerAccount:
    return wallet.ensure_wallet(user_id=User.objects.create_user("+8613812340000", display_name="Alice").pk)


def test_money_actions_record_the_values_before_and_after(ops):
    client, staff = ops
    alice_wallet = a_wallet()
    client.post("/admin/wallet/ledgeraccount/", {"action": "freeze", "_selected_action": [alice_wallet.pk]})
    assert LedgerAccount.objects.get(pk=alice_wallet.pk).is_frozen
    [entry] = entries(model_label="wallet.ledgeraccount")
    assert (entry.action, entry.action_name, entry.actor_id) == ("action", "freeze", staff.pk)
    assert entry.before["is_frozen"] is False and entry.after["is_frozen"] is True


def test_nobody_can_change_or_delete_the_log_not_even_a_superuser(ops):
    client, _ = ops
    client.post("/admin/wallet/ledgeraccount/", {"action": "freeze",
                                                 "_selected_action": [a_wallet().pk]})
    entry = AdminAuditEntry.objects.get()
    assert client.get("/admin/core/adminauditentry/").status_code == 200
    assert client.get(f"/admin/core/adminauditentry/{entry.pk}/change/").status_code == 200  # view only
    client.post(f"/admin/core/adminauditentry/{entry.pk}/change/", {"note": "nothing happened"})
    assert client.post(f"/admin/core/adminauditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/core/adminauditentry/add/").status_code == 403
    client.post("/admin/core/adminauditentry/", {"action": "delete_selected", "_selected_action": [entry.pk],
                                                 "post": "yes"})
    assert AdminAuditEntry.objects.get().note == ""
    with pytest.raises(AppendOnly):
        AdminAuditEntry.objects.filter(pk=entry.pk).update(note="x")
    with pytest.raises(AppendOnly):
        entry.delete()
    entry.note = "x"
    with pytest.raises(AppendOnly):
        entry.save()


def test_the_database_refuses_changes_too(require_postgres, ops):
    client, _ = ops
    client.post("/admin/wallet/ledgeraccount/", {"action": "freeze",
                                                 "_selected_action": [a_wallet().pk]})
    from django.db import connection

    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_adminauditentry SET note = 'x'")
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM core_adminauditentry")
