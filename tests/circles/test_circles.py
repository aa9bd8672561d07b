"""Circles: join policies, approval, invitations, roles, removal, verification, vouches, trust, blacklist."""

from __future__ import annotations

import datetime as dt

from django.core import mail

from backend.chat import selectors as chat_selectors
from backend.chat.models import Membership as ChatSeat
from backend.chat.models import Message
from backend.circles import selectors, services
from backend.circles.models import BlacklistAudit, CircleMember, JoinRequest, Vouch
from backend.core import clock

from .conftest import befriend, code_of, new_user


def chat_members(circle) -> set[int]:
    return set(ChatSeat.objects.filter(conversation_id=circle.conversation_id, left_at__isnull=True)
               .values_list("user_id", flat=True))


def test_open_circle_join_leave_and_the_chat_follows(people):
    ada, bob, *_ = people
    circle = services.create_circle(owner=ada, kind="interest", name="Go club")
    assert chat_members(circle) == {ada.pk}
    services.join_circle(user=bob, circle_id=circle.pk)
    assert chat_members(circle) == {ada.pk, bob.pk}
    before = CircleMember.objects.count()
    assert code_of(services.join_circle, user=bob, circle_id=circle.pk) == "ALREADY_MEMBER"  # joining twice
    assert CircleMember.objects.count() == before
    services.leave_circle(user=bob, circle_id=circle.pk)
    assert chat_members(circle) == {ada.pk}
    assert code_of(services.leave_circle, user=bob, circle_id=circle.pk) == "NOT_A_MEMBER"
    circle.refresh_from_db()
    assert circle.member_count == 1


def test_approval_flow(people):
    ada, bob, cyd, *_ = people
    circle = services.create_circle(owner=ada, kind="community", name="Building 7", join_policy="approval")
    services.join_circle(user=cyd, circle_id=circle.pk)
    request = services.join_circle(user=bob, circle_id=circle.pk, note="Flat 302")
    assert isinstance(request, JoinRequest) and not selectors.seat_of(bob.pk, circle.pk)
    assert code_of(services.join_circle, user=bob, circle_id=circle.pk) == "REQUEST_PENDING"
    # only admins decide
    assert code_of(services.decide_join_request, actor=bob, request_id=request.pk, approve=True) == "NOT_FOUND"
    services.decide_join_request(actor=ada, request_id=request.pk, approve=True)
    assert selectors.seat_of(bob.pk, circle.pk) and bob.pk in chat_members(circle)
    assert code_of(services.decide_join_request, actor=ada, request_id=request.pk, approve=True) == "NOT_FOUND"


def test_approval_request_can_be_rejected(people):
    ada, bob, *_ = people
    circle = services.create_circle(owner=ada, kind="community", name="B8", join_policy="approval")
    request = services.join_circle(user=bob, circle_id=circle.pk)
    services.decide_join_request(actor=ada, request_id=request.pk, approve=False)
    assert not selectors.seat_of(bob.pk, circle.pk)


def test_invite_codes_expire_and_run_out(people):
    ada, bob, cyd, dan, _ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="THU 2012", visibility="invite_only",
                                    join_policy="invite_code")
    assert code_of(services.join_circle, user=bob, circle_id=circle.pk) == "NOT_FOUND"  # not visible without a code
    assert code_of(services.create_invite_code, actor=bob, circle_id=circle.pk, expires_in_hours=1,
                   max_uses=1) == "NOT_FOUND"  # an invite-only circle does not exist for outsiders
    invite = services.create_invite_code(actor=ada, circle_id=circle.pk, expires_in_hours=1, max_uses=1)
    services.join_with_code(user=bob, code=invite.code.lower())
    assert bob.pk in chat_members(circle)
    assert code_of(services.join_with_code, user=cyd, code=invite.code) == "INVITE_EXHAUSTED"
    assert code_of(services.create_invite_code, actor=bob, circle_id=circle.pk, expires_in_hours=1,
                   max_uses=1) == "NOT_ALLOWED"
    short = services.create_invite_code(actor=ada, circle_id=circle.pk, expires_in_hours=1, max_uses=5)
    with clock.shifted(dt.timedelta(hours=2)):
        assert code_of(services.join_with_code, user=cyd, code=short.code) == "INVITE_EXPIRED"
    assert code_of(services.join_with_code, user=dan, code="NOPE") == "INVITE_INVALID"
    assert not selectors.seat_of(cyd.pk, circle.pk) and not selectors.seat_of(dan.pk, circle.pk)
    assert code_of(services.create_invite_code, actor=ada, circle_id=circle.pk, expires_in_hours=0,
                   max_uses=1) == "INVALID_EXPIRY"


def test_invitations_need_the_right_and_reach(people):
    ada, bob, cyd, dan, _ = people
    circle = services.create_circle(owner=ada, kind="friends", name="Old friends", join_policy="approval",
                                     visibility="hidden")
    befriend(ada, cyd)
    invitation = services.invite_user(actor=ada, circle_id=circle.pk, user_id=cyd.pk)
    services.accept_invitation(user=cyd, request_id=invitation.pk)
    befriend(cyd, dan)
    # a plain member of a non-open circle may not invite; a stranger to the circle does not see it
    assert code_of(services.invite_user, actor=cyd, circle_id=circle.pk, user_id=dan.pk) == "NOT_ALLOWED"
    assert code_of(services.invite_user, actor=dan, circle_id=circle.pk, user_id=bob.pk) == "NOT_FOUND"
    assert code_of(services.invite_user, actor=ada, circle_id=circle.pk, user_id=dan.pk) == "NOT_FOUND"  # no reach
    assert not JoinRequest.objects.filter(user=dan).exists()


def test_roles_removal_mute_and_ownership(people):
    ada, bob, cyd, dan, _ = people
    circle = services.create_circle(owner=ada, kind="interest", name="Runners")
    for user in (bob, cyd, dan):
        services.join_circle(user=user, circle_id=circle.pk)
    services.set_member_role(actor=ada, circle_id=circle.pk, user_id=bob.pk, role="admin")
    assert code_of(services.set_member_role, actor=bob, circle_id=circle.pk, user_id=cyd.pk, role="admin") == "NOT_ALLOWED"
    assert code_of(services.remove_member, actor=cyd, circle_id=circle.pk, user_id=dan.pk) == "NOT_ALLOWED"
    assert code_of(services.remove_member, actor=bob, circle_id=circle.pk, user_id=ada.pk) == "NOT_ALLOWED"
    services.mute_member(actor=bob, circle_id=circle.pk, user_id=cyd.pk, hours=2)
    assert code_of(services.create_post, author=cyd, text="hi", circle_id=circle.pk) == "MUTED"
    from backend.chat import services as chat

    assert code_of(chat.send_message, conversation_id=circle.conversation_id, sender=cyd, client_msg_id="m1",
                   text="let me talk") == "MUTED"  # the mute holds in the circle chat too
    services.mute_member(actor=bob, circle_id=circle.pk, user_id=cyd.pk, hours=0)
    assert chat.send_message(conversation_id=circle.conversation_id, sender=cyd, client_msg_id="m2", text="ok").created
    services.remove_member(actor=bob, circle_id=circle.pk, user_id=dan.pk)
    assert dan.pk not in chat_members(circle) and not selectors.seat_of(dan.pk, circle.pk)
    assert code_of(services.create_post, author=dan, text="still here?", circle_id=circle.pk) == "NOT_A_MEMBER"
    assert code_of(services.leave_circle, user=ada, circle_id=circle.pk) == "OWNER_MUST_TRANSFER"
    services.set_member_role(actor=ada, circle_id=circle.pk, user_id=bob.pk, role="owner")
    circle.refresh_from_db()
    assert circle.owner_id == bob.pk and selectors.seat_of(ada.pk, circle.pk).role == "admin"
    services.leave_circle(user=ada, circle_id=circle.pk)


def test_alumni_verification_by_school_email_and_by_proof(people, django_capture_on_commit_callbacks):
    ada, bob, cyd, *_ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="PKU 2010", requires_verification=True,
                                     verification_domain="pku.edu.cn")
    assert code_of(services.join_circle, user=bob, circle_id=circle.pk) == "VERIFICATION_REQUIRED"
    assert code_of(services.start_email_verification, user=bob, circle_id=circle.pk,
                   email="bob@gmail.com") == "EMAIL_DOMAIN_MISMATCH"
    with django_capture_on_commit_callbacks(execute=True):
        services.start_email_verification(user=bob, circle_id=circle.pk, email="bob@pku.edu.cn")
    code = mail.outbox[-1].body.split()[-1].rstrip(".")
    wrong = "000000" if code != "000000" else "111111"
    assert code_of(services.confirm_email_verification, user=bob, circle_id=circle.pk, code=wrong) == "CODE_INVALID"
    services.confirm_email_verification(user=bob, circle_id=circle.pk, code=code)
    seat = services.join_circle(user=bob, circle_id=circle.pk)
    assert seat.verified_at is not None and seat.verification_method == "email"
    proof = services.submit_verification_proof(user=cyd, circle_id=circle.pk, proof_url="https://img.example/d.jpg")
    assert code_of(services.decide_verification, actor=bob, request_id=proof.pk, approve=True) == "NOT_ALLOWED"
    services.decide_verification(actor=ada, request_id=proof.pk, approve=True)
    seat = services.join_circle(user=cyd, circle_id=circle.pk)
    assert seat.verified_by_id == ada.pk and seat.verified_at is not None


def test_vouch_limits_self_vouch_and_withdrawal_on_leave(people, settings):
    ada, bob, cyd, dan, eve = people
    settings.QUANZI_CIRCLES = {"VOUCHES_PER_MEMBER": 2}
    circle = services.create_circle(owner=ada, kind="interest", name="Chess")
    for user in (bob, cyd, dan, eve):
        services.join_circle(user=user, circle_id=circle.pk)
    assert code_of(services.vouch, voucher=ada, circle_id=circle.pk, vouchee_id=ada.pk) == "SELF_VOUCH"
    services.vouch(voucher=ada, circle_id=circle.pk, vouchee_id=bob.pk)
    assert code_of(services.vouch, voucher=ada, circle_id=circle.pk, vouchee_id=bob.pk) == "ALREADY_VOUCHED"
    services.vouch(voucher=ada, circle_id=circle.pk, vouchee_id=cyd.pk)
    assert code_of(services.vouch, voucher=ada, circle_id=circle.pk, vouchee_id=dan.pk) == "VOUCH_LIMIT_REACHED"
    assert Vouch.objects.filter(withdrawn_at__isnull=True).count() == 2
    services.vouch(voucher=dan, circle_id=circle.pk, vouchee_id=bob.pk)
    assert selectors.trust_profile(bob.pk, circle.pk).vouches_received == 2
    services.leave_circle(user=dan, circle_id=circle.pk)  # vouches by a leaver are withdrawn
    assert selectors.trust_profile(bob.pk, circle.pk).vouches_received == 1
    services.leave_circle(user=cyd, circle_id=circle.pk)  # and vouches for a leaver: Ada gets a slot back
    services.vouch(voucher=ada, circle_id=circle.pk, vouchee_id=eve.pk)
    outsider = new_user("Out")
    assert code_of(services.vouch, voucher=outsider, circle_id=circle.pk, vouchee_id=bob.pk) == "NOT_A_MEMBER"


def test_trust_score_moves_with_its_inputs(people):
    ada, bob, cyd, *_ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="Class of 2012")
    services.join_circle(user=bob, circle_id=circle.pk)
    services.join_circle(user=cyd, circle_id=circle.pk)
    base = selectors.trust_profile(bob.pk, circle.pk)
    assert base.score == 20 and base.tenure_days == 0
    with clock.shifted(dt.timedelta(days=95)):
        assert selectors.trust_profile(bob.pk, circle.pk).score == 23  # three months of tenure
    services.vouch(voucher=cyd, circle_id=circle.pk, vouchee_id=bob.pk)
    assert selectors.trust_profile(bob.pk, circle.pk).score == 24
    services.record_loan_outcome(user_id=bob.pk, circle_ids=[circle.pk], loan_ref="L1", outcome="on_time")
    services.record_loan_outcome(user_id=bob.pk, circle_ids=[circle.pk], loan_ref="L1", outcome="on_time")  # again
    assert selectors.trust_profile(bob.pk, circle.pk).repaid_on_time == 1
    assert selectors.trust_profile(bob.pk, circle.pk).score == 27
    services.record_loan_outcome(user_id=bob.pk, circle_ids=[circle.pk], loan_ref="L2", outcome="late")
    assert selectors.trust_profile(bob.pk, circle.pk).score == 22
    services.record_loan_outcome(user_id=bob.pk, circle_ids=[circle.pk], loan_ref="L2", outcome="defaulted")
    profile = selectors.trust_profile(bob.pk, circle.pk)
    assert (profile.repaid_late, profile.defaulted, profile.score) == (0, 1, 0)
    assert selectors.trust_profile(new_user().pk, circle.pk) is None


def test_blacklist_effects_and_audit(people):
    ada, bob, cyd, dan, _ = people
    staff = new_user("Ops", is_staff=True)
    told = services.create_circle(owner=ada, kind="alumni", name="Told")
    untold = services.create_circle(owner=ada, kind="interest", name="Untold")
    for circle in (told, untold):
        services.join_circle(user=bob, circle_id=circle.pk)
    entry = services.blacklist_for_default(user=bob, loan_ref="loan-9", circles=[told], evidence="3 missed")
    assert services.blacklist_for_default(user=bob, loan_ref="loan-9", circles=[told]).pk == entry.pk  # idempotent
    assert services.is_blacklisted(bob.pk)
    # 公开通报 in the told circle's chat only
    notices = [m for m in Message.objects.filter(kind="system") if m.body.startswith("公开通报")]  # bodies are ciphertext
    assert [m.conversation_id for m in notices] == [told.conversation_id]
    # the mark shows only in the circle told
    assert selectors.blacklisted_in_circle(told.pk, [bob.pk]) == {bob.pk}
    assert selectors.blacklisted_in_circle(untold.pk, [bob.pk]) == set()
    # cannot create or join circles
    assert code_of(services.create_circle, owner=bob, kind="interest", name="New") == "BLACKLISTED"
    third = services.create_circle(owner=cyd, kind="interest", name="Third")
    assert code_of(services.join_circle, user=bob, circle_id=third.pk) == "BLACKLISTED"
    assert selectors.trust_profile(bob.pk, told.pk).score == 0
    untold_profile = selectors.trust_profile(bob.pk, untold.pk)  # nowhere else is the mark shown
    assert not untold_profile.blacklisted and untold_profile.score == 20
    # lifting needs staff and a reason; every change audited
    assert code_of(services.lift_blacklist, entry=entry, by_staff=dan, reason="x") == "FORBIDDEN"
    assert code_of(services.lift_blacklist, entry=entry, by_staff=staff, reason="  ") == "REASON_REQUIRED"
    services.lift_blacklist(entry=entry, by_staff=staff, reason="Repaid in full")
    assert not services.is_blacklisted(bob.pk)
    assert list(BlacklistAudit.objects.filter(entry=entry).values_list("action", "actor_id")) == [
        ("created", None), ("lifted", staff.pk)]
    services.join_circle(user=bob, circle_id=third.pk)


def test_direct_chat_in_a_circle_then_removal_ends_it_for_new_chats(people):
    ada, bob, cyd, *_ = people
    circle = services.create_circle(owner=ada, kind="interest", name="Photo")
    services.join_circle(user=bob, circle_id=circle.pk)
    services.join_circle(user=cyd, circle_id=circle.pk)
    from backend.chat import services as chat

    assert chat.open_direct_conversation(user=bob, other_user_id=cyd.pk)
    services.remove_member(actor=ada, circle_id=circle.pk, user_id=cyd.pk)
    assert code_of(chat.open_direct_conversation, user=new_user(), other_user_id=cyd.pk) == "NOT_FOUND"
    assert chat_selectors.seat_of(cyd.pk, circle.conversation_id) is None
