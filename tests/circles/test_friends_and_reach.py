"""Friends, blocking, contact discovery and who may open a chat with whom."""

from __future__ import annotations

from backend.chat import selectors as chat_selectors
from backend.chat import services as chat
from backend.chat.models import Conversation
from backend.circles import selectors, services
from backend.circles.models import FriendRequest, Friendship
from backend.notifications.models import Notification

from .conftest import befriend, code_of, new_user


def test_friend_request_accept_decline_remove(people):
    ada, bob, cyd, *_ = people
    request = services.send_friend_request(user=ada, to_user_id=bob.pk, note="同学 classmate")
    assert Notification.objects.filter(recipient=bob, event="circles.friend_request").count() == 1
    assert services.send_friend_request(user=ada, to_user_id=bob.pk).pk == request.pk  # asking twice: the same
    services.accept_friend_request(user=bob, request_id=request.pk)
    assert selectors.are_friends(ada.pk, bob.pk) and selectors.are_friends(bob.pk, ada.pk)
    assert code_of(services.send_friend_request, user=bob, to_user_id=ada.pk) == "ALREADY_FRIENDS"
    declined = services.send_friend_request(user=cyd, to_user_id=ada.pk)
    services.decline_friend_request(user=ada, request_id=declined.pk)
    assert not selectors.are_friends(ada.pk, cyd.pk)
    assert code_of(services.accept_friend_request, user=ada, request_id=declined.pk) == "NOT_FOUND"
    assert code_of(services.accept_friend_request, user=cyd, request_id=request.pk) == "NOT_FOUND"  # not hers
    services.remove_friend(user=bob, friend_id=ada.pk)
    assert not Friendship.objects.filter(user__in=[ada, bob]).exists()
    assert code_of(services.remove_friend, user=bob, friend_id=ada.pk) == "NOT_FOUND"


def test_crossing_requests_make_friends(people):
    ada, bob, *_ = people
    services.send_friend_request(user=ada, to_user_id=bob.pk)
    services.send_friend_request(user=bob, to_user_id=ada.pk)
    assert selectors.are_friends(ada.pk, bob.pk)


def test_non_friend_cannot_open_a_chat_or_learn_the_user_exists(people):
    ada, bob, cyd, *_ = people
    befriend(ada, bob)
    assert chat.open_direct_conversation(user=ada, other_user_id=bob.pk).kind == Conversation.Kind.DIRECT
    stranger = code_of(chat.open_direct_conversation, user=cyd, other_user_id=ada.pk)
    missing = code_of(chat.open_direct_conversation, user=cyd, other_user_id=987_654_321)
    assert stranger == missing == "NOT_FOUND"
    assert code_of(chat.create_group, owner=cyd, title="t", member_ids=[ada.pk]) == "NOT_FOUND"
    group = chat.create_group(owner=ada, title="ok", member_ids=[bob.pk])
    assert code_of(chat.add_members, conversation_id=group.pk, actor=bob, user_ids=[cyd.pk]) == "NOT_FOUND"
    assert not Conversation.objects.filter(memberships__user=cyd).exists()


def test_co_members_of_a_circle_may_chat_only_if_it_allows_it(people):
    ada, bob, cyd, *_ = people
    open_circle = services.create_circle(owner=ada, kind="interest", name="Go club")
    services.join_circle(user=bob, circle_id=open_circle.pk)
    assert chat.open_direct_conversation(user=bob, other_user_id=ada.pk)
    quiet = services.create_circle(owner=ada, kind="community", name="Quiet", members_may_message=False)
    services.join_circle(user=cyd, circle_id=quiet.pk)
    assert code_of(chat.open_direct_conversation, user=cyd, other_user_id=ada.pk) == "NOT_FOUND"


def test_own_client_manager_is_reachable(people):
    ada, *_ = people
    manager = new_user("Manager", role="client_manager")
    chat.open_advisor_conversation(customer_id=ada.pk, manager_id=manager.pk)
    assert chat.open_direct_conversation(user=ada, other_user_id=manager.pk)
    assert code_of(chat.open_direct_conversation, user=people[1], other_user_id=manager.pk) == "NOT_FOUND"


def test_blocking_applies_everywhere_and_says_nothing(people):
    ada, bob, cyd, *_ = people
    befriend(ada, bob)
    direct = chat.open_direct_conversation(user=ada, other_user_id=bob.pk)
    chat.send_message(conversation_id=direct.pk, sender=bob, client_msg_id="before", text="before the block")
    chat.mark_read(conversation_id=direct.pk, user=ada, seq=1)
    circle = services.create_circle(owner=cyd, kind="interest", name="Chess")
    for user in (ada, bob):
        services.join_circle(user=user, circle_id=circle.pk)
    services.vouch(voucher=bob, circle_id=circle.pk, vouchee_id=ada.pk)
    services.block_user(user=ada, other_id=bob.pk)
    # the friendship and the vouch are gone; the circle chat no longer makes them reachable
    assert not selectors.are_friends(ada.pk, bob.pk)
    assert selectors.trust_profile(ada.pk, circle.pk).vouches_received == 0
    assert code_of(chat.open_direct_conversation, user=bob, other_user_id=ada.pk) == "NOT_FOUND"
    # cannot message: accepted for Bob, never delivered to Ada (no ring, no push, not in her history)
    sent = chat.send_message(conversation_id=direct.pk, sender=bob, client_msg_id="after", text="are you there?")
    assert sent.created
    ada_seat = chat_selectors.seat_of(ada.pk, direct.pk)
    bob_seat = chat_selectors.seat_of(bob.pk, direct.pk)
    assert [m.body for m in chat_selectors.history(ada_seat)[0]] == ["before the block"]
    assert [m.body for m in chat_selectors.history(bob_seat)[0]] == ["before the block", "are you there?"]
    # nor in what a reconnecting socket replays (resume reads the missed messages its own way)
    assert [m.body for m in chat_selectors.resume_plan(ada.pk, {direct.pk: (0, None)}).replay[direct.pk]] \
        == ["before the block"]
    assert [m.body for m in chat_selectors.resume_plan(bob.pk, {direct.pk: (0, None)}).replay[direct.pk]] \
        == ["before the block", "are you there?"]
    assert not Notification.objects.filter(recipient=ada, body__contains="are you there").exists()
    assert chat_selectors.unread_count(chat_selectors.seat_of(ada.pk, direct.pk)) == 0  # nothing unread for Ada
    # cannot friend (answered like anyone else, never shown to Ada), find, invite or vouch
    request = services.send_friend_request(user=bob, to_user_id=ada.pk)
    assert request.status == FriendRequest.Status.PENDING
    assert code_of(services.accept_friend_request, user=ada, request_id=request.pk) == "NOT_FOUND"
    services.set_discoverability(user=ada, by_phone=True)
    assert code_of(services.find_by_phone, user=bob, phone=ada.phone) == "NOT_FOUND"
    code = services.discoverability_of(ada.pk).share_code
    assert code_of(services.find_by_share_code, user=bob, code=code) == "NOT_FOUND"
    assert services.match_contacts(user=bob, phones=[ada.phone]) == []
    assert code_of(services.vouch, voucher=bob, circle_id=circle.pk, vouchee_id=ada.pk) == "NOT_FOUND"
    other = services.create_circle(owner=bob, kind="interest", name="Bob's")
    assert code_of(services.invite_user, actor=bob, circle_id=other.pk, user_id=ada.pk) == "NOT_FOUND"
    # unblocking restores nothing by itself, but Ada can be found again
    services.unblock_user(user=ada, other_id=bob.pk)
    assert services.find_by_phone(user=bob, phone=ada.phone) == ada


def test_discovery_honours_consent(people, settings):
    ada, bob, cyd, dan, _ = people
    services.set_discoverability(user=ada, by_phone=True)
    services.set_discoverability(user=cyd, by_phone=False)
    assert services.find_by_phone(user=bob, phone=ada.phone) == ada
    assert code_of(services.find_by_phone, user=bob, phone=cyd.phone) == "NOT_FOUND"
    assert code_of(services.find_by_phone, user=bob, phone="+8613999999999") == "NOT_FOUND"  # no such user
    # the share code finds anyone who shares it (it is theirs to hand out), and a new code retires the old
    code = services.discoverability_of(cyd.pk).share_code
    assert services.find_by_share_code(user=bob, code=code.lower()) == cyd
    services.set_discoverability(user=cyd, new_share_code=True)
    assert code_of(services.find_by_share_code, user=bob, code=code) == "NOT_FOUND"
    # contact upload: only those who allow it, declining looks like not being a user
    found = services.match_contacts(user=bob, phones=[ada.phone, cyd.phone, dan.phone, "+8613999999998", "bogus"])
    assert found == [ada]
    settings.QUANZI_CIRCLES = {"CONTACT_MATCH_PER_HOUR": 1}
    services.match_contacts(user=dan, phones=[ada.phone])
    assert code_of(services.match_contacts, user=dan, phones=[ada.phone]) == "RATE_LIMITED"


def test_friend_requests_are_rate_limited(people, settings):
    ada, *others = people
    settings.QUANZI_CIRCLES = {"FRIEND_REQUESTS_PER_HOUR": 2}
    for other in others[:2]:
        services.send_friend_request(user=ada, to_user_id=other.pk)
    assert code_of(services.send_friend_request, user=ada, to_user_id=others[2].pk) == "RATE_LIMITED"
    assert not FriendRequest.objects.filter(to_user=others[2]).exists()

