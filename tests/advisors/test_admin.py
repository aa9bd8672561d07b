"""The back office: assignments made in the admin go through the assignment service and are audited; service
accounts created there are verified senders; every advisors page renders."""

import pytest

from backend.advisors import services
from backend.advisors.models import Assignment, CustomerRecord, ServiceAccount
from backend.chat.models import Membership
from backend.core.models import AdminAuditEntry

from .conftest import assign, new_manager, new_user

pytestmark = pytest.mark.django_db


def test_reassignment_in_the_admin_uses_the_service_and_is_audited(ops):
    client, staff = ops
    ann = new_user("Ann")
    mia, max_ = new_manager("Mia"), new_manager("Max", capacity=1)
    assign(ann, mia)
    response = client.post("/admin/advisors/assignment/add/", {"customer": ann.pk, "manager": max_.pk,
                                                                 "reason": "branch move"})
    assert response.status_code == 302, response.content[:500]
    current = Assignment.objects.get(customer=ann, ended_at__isnull=True)
    assert current.manager == max_ and current.assigned_by == staff and current.method == "admin"
    conversation_id = CustomerRecord.objects.get(customer=ann).conversation_id
    assert set(Membership.objects.filter(conversation_id=conversation_id, left_at__isnull=True)
               .values_list("user_id", flat=True)) == {ann.pk, max_.pk}
    entry = AdminAuditEntry.objects.get(model_label="advisors.assignment")
    assert entry.actor_id == staff.pk and entry.action == "add" and entry.object_id == str(current.pk)
    # Max is full: the admin shows the error and nothing changes
    bob = new_user("Bob")
    response = client.post("/admin/advisors/assignment/add/", {"customer": bob.pk, "manager": max_.pk, "reason": ""},
                           follow=True)
    assert b"no capacity left" in response.content
    assert not Assignment.objects.filter(customer=bob).exists()


def test_service_account_created_in_the_admin_is_a_verified_sender(ops):
    client, _ = ops
    response = client.post("/admin/advisors/serviceaccount/add/", {"slug": "credit-card", "category": "service",
                                                                    "description": "", "name": "Credit card"})
    assert response.status_code == 302, response.content[:500]
    account = ServiceAccount.objects.get(slug="credit-card")
    assert account.user.display_name == "Credit card" and account.user.is_verified
    assert AdminAuditEntry.objects.filter(model_label="advisors.serviceaccount", action="add").exists()


def test_every_advisors_page_renders(ops, product):
    client, staff = ops
    ann = new_user("Ann")
    assign(ann, new_manager("Mia"))
    offers = services.create_service_account(slug="offers", name="Offers", category="marketing")
    services.deliver_broadcast(broadcast_id=services.create_broadcast(
        sender=staff, account=offers, text="hi", target="list", user_ids=[ann.pk]).pk)
    for page in ("managerprofile", "customerrecord", "assignment", "serviceaccount", "broadcast", "product"):
        assert client.get(f"/admin/advisors/{page}/").status_code == 200, page
    assert client.get(f"/admin/accounts/user/{ann.pk}/change/").status_code == 200
