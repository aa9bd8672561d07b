"""Moments (friend-only and circle posts, WeChat's comment rule) and events (RSVP, waitlist, reminders,
attendance toward trust)."""

from __future__ import annotations

import datetime as dt

from backend.circles import selectors, services
from backend.circles.models import Post, PostComment, Rsvp
from backend.core import clock
from backend.notifications.models import Notification

from .conftest import befriend, code_of


def timeline_ids(user) -> list[int]:
    return [p.pk for p in selectors.timeline(user.pk, before_id=None, limit=100)]


def test_friend_only_post_never_reaches_a_non_friend(people):
    ada, bob, cyd, *_ = people
    befriend(ada, bob)
    post = services.create_post(author=ada, text="周末去爬山", images=["https://img.example/1.jpg"])
    assert post.pk in timeline_ids(bob) and post.pk in timeline_ids(ada)
    assert post.pk not in timeline_ids(cyd)
    assert code_of(services.like_post, user=cyd, post_id=post.pk) == "NOT_FOUND"
    assert code_of(services.comment_on_post, user=cyd, post_id=post.pk, text="hi") == "NOT_FOUND"
    services.remove_friend(user=bob, friend_id=ada.pk)
    assert post.pk not in timeline_ids(bob)


def test_circle_post_reaches_members_only_and_not_after_leaving(people):
    ada, bob, cyd, *_ = people
    circle = services.create_circle(owner=ada, kind="community", name="Block 3")
    services.join_circle(user=bob, circle_id=circle.pk)
    post = services.create_post(author=ada, text="停水通知", circle_id=circle.pk)
    assert post.pk in timeline_ids(bob) and post.pk not in timeline_ids(cyd)
    services.leave_circle(user=bob, circle_id=circle.pk)
    assert post.pk not in timeline_ids(bob)
    before = Post.objects.count()
    assert code_of(services.create_post, author=bob, text="I left", circle_id=circle.pk) == "NOT_A_MEMBER"
    assert code_of(services.create_post, author=cyd, text="never in", circle_id=circle.pk) == "NOT_A_MEMBER"
    assert Post.objects.count() == before
    hidden = services.create_circle(owner=ada, kind="friends", name="Secret", visibility="hidden")
    assert code_of(services.create_post, author=cyd, text="?", circle_id=hidden.pk) == "NOT_FOUND"


def test_comments_between_non_friends_stay_hidden(people):
    ada, bob, cyd, *_ = people
    befriend(ada, bob)
    befriend(ada, cyd)  # Bob and Cyd are both Ada's friends but not each other's
    post = services.create_post(author=ada, text="新工作！")
    services.comment_on_post(user=bob, post_id=post.pk, text="恭喜 from Bob")
    services.comment_on_post(user=cyd, post_id=post.pk, text="恭喜 from Cyd")
    seen = {u.display_name: [c.text for c in selectors.visible_comments(u.pk, [post.pk])] for u in (ada, bob, cyd)}
    assert seen == {"Ada": ["恭喜 from Bob", "恭喜 from Cyd"], "Bob": ["恭喜 from Bob"], "Cyd": ["恭喜 from Cyd"]}


def test_likes_are_counted_once_and_blocks_hide_posts(people):
    ada, bob, *_ = people
    befriend(ada, bob)
    post = services.create_post(author=ada, text="hello", card={"kind": "product", "product_id": "P1"})
    services.like_post(user=bob, post_id=post.pk)
    assert services.like_post(user=bob, post_id=post.pk).like_count == 1
    assert services.unlike_post(user=bob, post_id=post.pk).like_count == 0
    circle = services.create_circle(owner=ada, kind="interest", name="Both in")
    services.join_circle(user=bob, circle_id=circle.pk)
    in_circle = services.create_post(author=ada, text="circle post", circle_id=circle.pk)
    services.block_user(user=ada, other_id=bob.pk)
    assert in_circle.pk not in timeline_ids(bob)  # a block hides even circle posts
    assert code_of(services.create_post, author=ada, card={"kind": "weird"}) == "INVALID_CARD"
    assert code_of(services.create_post, author=ada, text="  ") == "EMPTY_POST"
    assert code_of(services.create_post, author=ada, images=["http://insecure"]) == "INVALID_IMAGES"


def test_events_rsvp_waitlist_reminders_and_attendance(people):
    ada, bob, cyd, dan, _ = people
    circle = services.create_circle(owner=ada, kind="alumni", name="Salon")
    for user in (bob, cyd, dan):
        services.join_circle(user=user, circle_id=circle.pk)
    starts = clock.now() + dt.timedelta(hours=30)
    assert code_of(services.create_event, actor=bob, circle_id=circle.pk, title="Salon", place="Room 1",
                   starts_at=starts, capacity=2) == "NOT_ALLOWED"
    assert code_of(services.create_event, actor=ada, circle_id=circle.pk, title="Salon", place="Room 1",
                   starts_at=clock.now() - dt.timedelta(hours=1), capacity=2) == "INVALID_START"
    event = services.create_event(actor=ada, circle_id=circle.pk, title="理财沙龙", place="Room 1", starts_at=starts,
                                  capacity=2)
    assert services.rsvp(user=bob, event_id=event.pk, going=True).status == Rsvp.Status.GOING
    assert services.rsvp(user=cyd, event_id=event.pk, going=True).status == Rsvp.Status.GOING
    assert services.rsvp(user=dan, event_id=event.pk, going=True).status == Rsvp.Status.WAITLISTED
    services.rsvp(user=bob, event_id=event.pk, going=False)  # Dan moves up
    assert Rsvp.objects.get(event=event, user=dan).status == Rsvp.Status.GOING
    assert services.send_event_reminders() == 0  # not within 24 hours yet
    with clock.shifted(dt.timedelta(hours=7)):
        assert services.send_event_reminders() == 2
        assert services.send_event_reminders() == 0  # once per event
    assert set(Notification.objects.filter(event="circles.event_reminder").values_list("recipient_id", flat=True)) \
        == {cyd.pk, dan.pk}
    before = selectors.trust_profile(dan.pk, circle.pk).score
    assert code_of(services.mark_attendance, actor=cyd, event_id=event.pk, user_id=dan.pk, attended=True) == "NOT_ALLOWED"
    services.mark_attendance(actor=ada, event_id=event.pk, user_id=dan.pk, attended=True)
    assert selectors.trust_profile(dan.pk, circle.pk).events_attended == 1
    assert selectors.trust_profile(dan.pk, circle.pk).score == before + 2
    outsider_code = code_of(services.rsvp, user=people[4], event_id=event.pk, going=True)
    assert outsider_code == "NOT_FOUND"


def test_comment_text_is_checked(people):
    ada, *_ = people
    post = services.create_post(author=ada, text="x")
    assert code_of(services.comment_on_post, user=ada, post_id=post.pk, text="") == "INVALID_TEXT"
    assert PostComment.objects.count() == 0


def test_an_admin_cancels_an_event_and_members_are_told(people):
    ada, bob, cyd, *_ = people
    circle = services.create_circle(owner=ada, kind="community", name="Garden")
    services.join_circle(user=bob, circle_id=circle.pk)
    services.join_circle(user=cyd, circle_id=circle.pk)
    event = services.create_event(actor=ada, circle_id=circle.pk, title="种花", place="Yard",
                                  starts_at=clock.now() + dt.timedelta(days=2), capacity=5)
    services.rsvp(user=bob, event_id=event.pk, going=True)
    assert code_of(services.cancel_event, actor=cyd, event_id=event.pk) == "NOT_ALLOWED"
    services.cancel_event(actor=ada, event_id=event.pk)
    assert Notification.objects.filter(recipient=bob, event="circles.event_cancelled").exists()
    assert not selectors.events_of(circle.pk, bob.pk).exists()
    assert code_of(services.rsvp, user=cyd, event_id=event.pk, going=True) == "NOT_FOUND"

