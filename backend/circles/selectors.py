"""Reads of the circles app, scoped to what the asking user may see, and the public questions other apps ask
(`may_contact`, `blocked_since` through core.reach; `is_blacklisted` and `trust_profile` for loans)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from backend.chat.models import Conversation
from backend.chat.models import Membership as ChatSeat
from backend.core import clock
from backend.core.compiled import CompiledQuery

from .models import (
    BlacklistEntry,
    Block,
    Circle,
    CircleEvent,
    CircleMember,
    FriendRequest,
    Friendship,
    JoinRequest,
    LoanOutcome,
    Post,
    PostComment,
    Rsvp,
    VerificationRequest,
    Vouch,
)

# --- friends, blocks, reachability ------------------------------------------------------------------------


def are_friends(user_id: int, other_id: int) -> bool:
    return Friendship.objects.filter(user_id=user_id, friend_id=other_id).exists()


def friend_ids(user_id: int) -> QuerySet:
    return Friendship.objects.filter(user_id=user_id).values("friend_id")


def is_blocked_between(user_id: int, other_id: int) -> bool:
    """Either one blocked the other."""
    return Block.objects.filter(Q(blocker_id=user_id, blocked_id=other_id)
                                | Q(blocker_id=other_id, blocked_id=user_id)).exists()


# Asked once per direct-chat message (core.reach): compiled once per process (core.compiled).
_BLOCKED_SINCE = CompiledQuery(
    lambda blocker_id, other_id: Block.objects.filter(blocker_id=blocker_id, blocked_id=other_id)
    .values_list("created_at")[:1],
    blocker_id=-7_392_011, other_id=-7_392_012,
)


def blocked_since(blocker_id: int, other_id: int) -> dt.datetime | None:
    rows = _BLOCKED_SINCE.rows(connection, blocker_id=blocker_id, other_id=other_id)
    return rows[0][0] if rows else None


def friend_requests_of(user_id: int) -> QuerySet[FriendRequest]:
    """Friend requests the user sent or received: only the two parties ever see one."""
    return FriendRequest.objects.select_related("from_user", "to_user").filter(
        Q(from_user_id=user_id) | Q(to_user_id=user_id))


def blocked_ids(user_id: int) -> set[int]:
    """Everyone I blocked and everyone who blocked me: neither side shows up for the other."""
    rows = Block.objects.filter(Q(blocker_id=user_id) | Q(blocked_id=user_id)).values_list("blocker_id", "blocked_id")
    return {b if a == user_id else a for a, b in rows}


def shares_messaging_circle(user_id: int, other_id: int) -> bool:
    return CircleMember.objects.filter(
        user_id=other_id, left_at__isnull=True, circle__members_may_message=True,
        circle__members__user_id=user_id, circle__members__left_at__isnull=True,
    ).exists()


def is_client_manager_of(user_id: int, other_id: int) -> bool:
    """One of the two is the other's client manager: they share an active advisor conversation."""
    return ChatSeat.objects.filter(
        conversation__kind=Conversation.Kind.ADVISOR, user_id=user_id, left_at__isnull=True,
        conversation__memberships__user_id=other_id, conversation__memberships__left_at__isnull=True,
    ).exists()


def may_contact(user_id: int, other_id: int) -> bool:
    """The core.reach policy: friends, co-members of a circle that allows it, or one's own client manager —
    and never across a block (either way)."""
    if user_id == other_id:
        return True
    if is_blocked_between(user_id, other_id):
        return False
    return (are_friends(user_id, other_id) or shares_messaging_circle(user_id, other_id)
            or is_client_manager_of(user_id, other_id))


def may_send_in_circle_chat(conversation_key: str, user_id: int) -> bool:
    """The core.reach send policy: a member muted by a circle admin may not post in the circle chat."""
    kind, _, raw = conversation_key.partition(":")
    if kind != "circle" or not raw.isdigit():
        return True
    return not CircleMember.objects.filter(circle_id=int(raw), user_id=user_id, left_at__isnull=True,
                                           muted_until__gt=clock.now()).exists()


# --- circles ------------------------------------------------------------------------------------------


def seat_of(user_id: int, circle_id: int) -> CircleMember | None:
    return (CircleMember.objects.select_related("circle")
            .filter(user_id=user_id, circle_id=circle_id, left_at__isnull=True).first())


def visible_circles(user_id: int) -> QuerySet[Circle]:
    """Circles a user may look at: public ones and the ones they belong to. Invite-only circles show up for a
    code holder through `circle_by_invite_code`; hidden ones do not exist for non-members."""
    mine = CircleMember.objects.filter(circle=OuterRef("pk"), user_id=user_id, left_at__isnull=True)
    return Circle.objects.filter(Q(visibility=Circle.Visibility.PUBLIC) | Exists(mine))


def my_circles(user_id: int) -> QuerySet[CircleMember]:
    return (CircleMember.objects.select_related("circle")
            .filter(user_id=user_id, left_at__isnull=True).order_by("-joined_at", "-id"))


def _admin_circle_ids(user_id: int) -> QuerySet:
    return CircleMember.objects.filter(user_id=user_id, left_at__isnull=True,
                                       role__in=(CircleMember.Role.OWNER, CircleMember.Role.ADMIN)).values("circle_id")


def join_requests_visible_to(user_id: int) -> QuerySet[JoinRequest]:
    """Join requests and invitations: the requester (invitee) sees theirs, a circle's owner and admins see the
    circle's. Nobody else learns that someone asked to join."""
    return JoinRequest.objects.select_related("circle", "user", "invited_by").filter(
        Q(user_id=user_id) | Q(circle_id__in=_admin_circle_ids(user_id)))


def verification_requests_visible_to(user_id: int) -> QuerySet[VerificationRequest]:
    """Verification requests: the requester sees theirs, a circle's owner and admins (who decide them) see the
    circle's."""
    return VerificationRequest.objects.filter(Q(user_id=user_id) | Q(circle_id__in=_admin_circle_ids(user_id)))


def members_of(circle_id: int) -> QuerySet[CircleMember]:
    """Active members; the caller must be one (schema checks through seat_of)."""
    return CircleMember.objects.select_related("user").filter(circle_id=circle_id, left_at__isnull=True).order_by("id")


# --- blacklist ----------------------------------------------------------------------------------------


def is_blacklisted(user_id: int) -> bool:
    """For loans and circles: an active (not lifted) entry exists."""
    return BlacklistEntry.objects.filter(user_id=user_id, lifted_at__isnull=True).exists()


def blacklisted_in_circle(circle_id: int, user_ids: list[int]) -> set[int]:
    """Who among these members carries an active mark told to this circle (the only place it shows)."""
    return set(BlacklistEntry.objects.filter(user_id__in=user_ids, lifted_at__isnull=True, circles__id=circle_id)
               .values_list("user_id", flat=True))


# --- trust -----------------------------------------------------------------------------------------------

# The formula (docs/architecture.md, "Circles"): points, clamped to 0..100; an active blacklist mark is 0.
BASE = 20
PER_TENURE_MONTH, TENURE_MONTHS_CAP = 1, 24
VERIFIED = 15
PER_VOUCH, VOUCHES_CAP = 4, 5
PER_EVENT_ATTENDED, EVENTS_CAP = 2, 5
PER_ON_TIME, ON_TIME_CAP = 3, 10
PER_LATE = -5
PER_DEFAULT = -40


@dataclass(frozen=True)
class TrustProfile:
    user_id: int
    circle_id: int
    tenure_days: int
    verified: bool
    vouches_received: int
    events_attended: int
    repaid_on_time: int
    repaid_late: int
    defaulted: int
    blacklisted: bool
    score: int


def trust_score(*, tenure_days: int, verified: bool, vouches_received: int, events_attended: int,
                repaid_on_time: int, repaid_late: int, defaulted: int, blacklisted: bool) -> int:
    if blacklisted:
        return 0
    points = (BASE + min(tenure_days // 30, TENURE_MONTHS_CAP) * PER_TENURE_MONTH
              + (VERIFIED if verified else 0)
              + min(vouches_received, VOUCHES_CAP) * PER_VOUCH
              + min(events_attended, EVENTS_CAP) * PER_EVENT_ATTENDED
              + min(repaid_on_time, ON_TIME_CAP) * PER_ON_TIME
              + repaid_late * PER_LATE + defaulted * PER_DEFAULT)
    return max(0, min(100, points))


def trust_profile(user_id: int, circle_id: int) -> TrustProfile | None:
    """A member's trust in one circle with every input shown; None when they are not an active member."""
    seat = CircleMember.objects.filter(user_id=user_id, circle_id=circle_id, left_at__isnull=True).first()
    if seat is None:
        return None
    vouches = Vouch.objects.filter(circle_id=circle_id, vouchee_id=user_id, withdrawn_at__isnull=True).count()
    attended = Rsvp.objects.filter(event__circle_id=circle_id, user_id=user_id, attended=True).count()
    outcomes = dict(LoanOutcome.objects.filter(user_id=user_id, circle_id=circle_id).values_list("outcome")
                    .annotate(n=Count("id")).values_list("outcome", "n"))
    inputs = {
        "tenure_days": max(0, (clock.now() - seat.joined_at).days),
        "verified": seat.verified_at is not None,
        "vouches_received": vouches,
        "events_attended": attended,
        "repaid_on_time": outcomes.get(LoanOutcome.Outcome.ON_TIME, 0),
        "repaid_late": outcomes.get(LoanOutcome.Outcome.LATE, 0),
        "defaulted": outcomes.get(LoanOutcome.Outcome.DEFAULTED, 0),
        # the mark counts (and shows) only in circles that were told; loans ask is_blacklisted() separately
        "blacklisted": bool(blacklisted_in_circle(circle_id, [user_id])),
    }
    return TrustProfile(user_id=user_id, circle_id=circle_id, score=trust_score(**inputs), **inputs)


# --- moments ---------------------------------------------------------------------------------------------


def visible_posts(user_id: int) -> QuerySet[Post]:
    """Posts I may see: mine, my friends' friend-only posts (unless a block stands between us), and posts to
    circles I am an active member of."""
    my_circles_q = CircleMember.objects.filter(user_id=user_id, left_at__isnull=True).values("circle_id")
    hidden = Block.objects.filter(Q(blocker_id=user_id, blocked_id=OuterRef("author_id"))
                                  | Q(blocker_id=OuterRef("author_id"), blocked_id=user_id))
    return (Post.objects.filter(deleted_at__isnull=True)
            .filter(Q(author_id=user_id)
                    | Q(audience=Post.Audience.FRIENDS, author_id__in=friend_ids(user_id))
                    | Q(audience=Post.Audience.CIRCLE, circle_id__in=my_circles_q))
            .exclude(Exists(hidden)))


def timeline(user_id: int, *, before_id: int | None, limit: int) -> list[Post]:
    """Newest first, keyset by id; the author and circle joined, so a page is a fixed number of queries."""
    rows = visible_posts(user_id).select_related("author", "circle")
    if before_id is not None:
        rows = rows.filter(id__lt=before_id)
    return list(rows.order_by("-id")[:limit])


def visible_comments_of(user_id: int) -> QuerySet[PostComment]:
    """WeChat's rule: a comment shows only to viewers who can see the post and are friends of the commenter
    (or are the commenter)."""
    return (PostComment.objects.select_related("author")
            .filter(post__in=visible_posts(user_id), deleted_at__isnull=True)
            .filter(Q(author_id=user_id) | Q(author_id__in=friend_ids(user_id))))


def visible_comments(user_id: int, post_ids: list[int]) -> QuerySet[PostComment]:
    """The comments the viewer may see on these posts, oldest first."""
    return visible_comments_of(user_id).filter(post_id__in=post_ids).order_by("id")


# --- events ----------------------------------------------------------------------------------------------


def visible_events(viewer_id: int) -> QuerySet[CircleEvent]:
    """Live events of the circles the viewer is an active member of (events are for members), with their counts
    and the viewer's own RSVP, in one query."""
    my_circles_q = CircleMember.objects.filter(user_id=viewer_id, left_at__isnull=True).values("circle_id")
    mine = Rsvp.objects.filter(event=OuterRef("pk"), user_id=viewer_id).values("status")[:1]
    return CircleEvent.objects.filter(circle_id__in=my_circles_q, cancelled_at__isnull=True).annotate(
        going=Count("rsvps", filter=Q(rsvps__status=Rsvp.Status.GOING)),
        waitlisted=Count("rsvps", filter=Q(rsvps__status=Rsvp.Status.WAITLISTED)),
        my_status=Subquery(mine),
    ).order_by("starts_at", "id")


def events_of(circle_id: int, viewer_id: int) -> QuerySet[CircleEvent]:
    """One circle's live events as the viewer sees them (nothing unless the viewer is a member)."""
    return visible_events(viewer_id).filter(circle_id=circle_id)
