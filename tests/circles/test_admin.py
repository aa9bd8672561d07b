"""Operations lift a blacklist entry in the admin (a reason is required, the change is audited) and approve
alumni proof through the same service the app uses."""

from __future__ import annotations

from backend.circles import services
from backend.circles.models import BlacklistAudit, BlacklistEntry, CircleMember

from .conftest import new_user


def staff_client(client):
    staff = new_user("Ops", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client, staff


def test_lifting_a_blacklist_entry_needs_a_reason_and_is_audited(client, people):
    ada, bob, *_ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="Told")
    services.join_circle(user=bob, circle_id=circle.pk)
    entry = services.blacklist_for_default(user=bob, loan_ref="L-7", circles=[circle])
    client, staff = staff_client(client)
    url = f"/admin/circles/blacklistentry/{entry.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and "Told" in page.content.decode()
    audit = {"audit-TOTAL_FORMS": 1, "audit-INITIAL_FORMS": 1, "audit-0-entry": entry.pk,
             "audit-0-id": BlacklistAudit.objects.get(entry=entry).pk}
    client.post(url, {"evidence": "", "lift_reason": "", **audit})
    assert BlacklistEntry.objects.get(pk=entry.pk).lifted_at is None  # no reason: not lifted
    response = client.post(url, {"evidence": "", "lift_reason": "Repaid in full", **audit})
    assert response.status_code == 302
    entry.refresh_from_db()
    assert entry.lifted_at is not None and entry.lifted_by_id == staff.pk and entry.lift_reason == "Repaid in full"
    assert BlacklistAudit.objects.filter(entry=entry, action="lifted", actor=staff).exists()
    assert not services.is_blacklisted(bob.pk)


def test_staff_approve_alumni_proof(client, people):
    ada, bob, *_ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="THU", requires_verification=True)
    proof = services.submit_verification_proof(user=bob, circle_id=circle.pk, proof_url="https://img.example/p.jpg")
    client, staff = staff_client(client)
    client.post("/admin/circles/verificationrequest/", {"action": "approve", "_selected_action": [proof.pk]})
    services.join_circle(user=bob, circle_id=circle.pk)
    seat = CircleMember.objects.get(circle=circle, user=bob)
    assert seat.verified_by_id == staff.pk and seat.verified_at is not None
    for path in ("circle", "abusereport", "verificationrequest", "blacklistentry"):
        assert client.get(f"/admin/circles/{path}/").status_code == 200


def test_user_admin_shows_the_defaulter_mark_only_for_blacklisted_users(client, people):
    ada, bob, *_ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="Told")
    services.join_circle(user=bob, circle_id=circle.pk)
    services.blacklist_for_default(user=bob, loan_ref="L-9", circles=[circle])
    client, staff = staff_client(client)
    listing = client.get("/admin/accounts/user/").content.decode()
    assert listing.count("BLACKLISTED") == 1
    only_marked = client.get("/admin/accounts/user/?blacklisted=yes").content.decode()
    assert f"/admin/accounts/user/{bob.pk}/change/" in only_marked
    assert f"/admin/accounts/user/{ada.pk}/change/" not in only_marked
    unmarked = client.get("/admin/accounts/user/?blacklisted=no").content.decode()
    assert f"/admin/accounts/user/{bob.pk}/change/" not in unmarked
    bob_page = client.get(f"/admin/accounts/user/{bob.pk}/change/").content.decode()
    assert "BLACKLISTED for loan L-9" in bob_page
    assert "BLACKLISTED" not in client.get(f"/admin/accounts/user/{ada.pk}/change/").content.decode()
    services.lift_blacklist(entry=BlacklistEntry.objects.get(user=bob), by_staff=staff, reason="Repaid")
    assert "BLACKLISTED" not in client.get("/admin/accounts/user/").content.decode()  # a lifted mark does not show
