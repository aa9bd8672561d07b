"""Admin screens: packets, transfers, bills and settle-ups read-only; the risk list with its audit trail."""

import pytest

from backend.accounts.models import User, phone_index
from backend.payments import services
from backend.payments.models import Bill
from backend.wallet.models import RiskListChange, RiskListEntry
from tests.conftest import open_direct_between_friends

from .conftest import group_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(client):
    staff = User.objects.create_superuser("+8613700008888", "ops-password-2026")
    client.force_login(staff)
    client.staff = staff
    return client


def test_payments_admin_lists_and_details_are_read_only(ops, people):
    ada, bob, cyd, _ = people
    group = group_of(ada, bob, cyd)
    packet, _ = services.send_red_packet(sender=ada, conversation_id=group.pk, kind="lucky", amount=300, count=2,
                                         idempotency_key="admin-packet")
    services.grab_red_packet(user=bob, packet_id=packet.pk)
    bill, _ = services.create_bill(creator=ada, conversation_id=group.pk, title="咖啡", amount=200, method="equal",
                                   participants=[bob.pk, cyd.pk], idempotency_key="admin-bill-1")
    direct = open_direct_between_friends(ada, bob)
    services.send_transfer(sender=ada, conversation_id=direct.pk, amount=100, idempotency_key="admin-xfer-1")
    services.start_settlement(user=ada, conversation_id=group.pk)
    for model in ("redpacket", "bill", "friendtransfer", "settlement"):
        assert ops.get(f"/admin/payments/{model}/").status_code == 200, model
        assert ops.get(f"/admin/payments/{model}/add/").status_code == 403
    page = ops.get(f"/admin/payments/redpacket/{packet.pk}/change/")
    assert page.status_code == 200 and packet.seed.encode() not in page.content  # the seed stays secret
    assert ops.get(f"/admin/payments/bill/{bill.pk}/change/").status_code == 200
    ops.post(f"/admin/payments/bill/{bill.pk}/change/", {"status": "cancelled"})
    assert Bill.objects.get(pk=bill.pk).status == "open"


def test_risk_list_is_managed_in_admin_with_an_audit_trail(ops, people):
    _, bob, *_ = people
    response = ops.post("/admin/wallet/risklistentry/add/", {
        "phone": "139 0000 1234", "source": "police", "level": "warn", "reported_on": "2026-11-20",
        "note": "reported by victim", "is_active": "on",
        "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.content[:2000]
    entry = RiskListEntry.objects.get()
    assert entry.phone_index == phone_index("+8613900001234") and entry.phone_masked == "+86139****1234"
    assert "1234" not in entry.phone_index
    response = ops.post(f"/admin/wallet/risklistentry/{entry.pk}/change/", {
        "phone": "", "source": "police", "level": "block", "reported_on": "2026-11-20", "note": "confirmed",
        "changes-TOTAL_FORMS": "1", "changes-INITIAL_FORMS": "1",
        "changes-0-id": str(entry.changes.get().pk), "changes-0-entry": str(entry.pk),
    })
    assert response.status_code == 302, response.content[:2000]
    changes = list(RiskListChange.objects.filter(entry=entry).order_by("id").values_list("action", "actor_id"))
    assert changes == [("added", ops.staff.pk), ("changed", ops.staff.pk)]
    entry.refresh_from_db()
    assert entry.level == "block" and entry.is_active is False
    assert ops.post(f"/admin/wallet/risklistentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ops.post("/admin/wallet/risklistentry/add/", {
        "phone": "", "source": "police", "level": "warn", "reported_on": "2026-11-20",
        "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0"}).status_code == 200  # no target: form error
    assert RiskListEntry.objects.count() == 1
