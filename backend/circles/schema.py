"""GraphQL for circles: friends and discovery, circles and members, trust, moments, events. Thin: services
decide, selectors scope. Hidden circles do not exist for non-members; member lists, trust and blacklist marks
only for members; a post, comment or event outside what the caller may see is NOT_FOUND."""

from __future__ import annotations

import graphene
from django.contrib.auth import get_user_model
from graphene.types.generic import GenericScalar

from backend.accounts.ids import decode_user
from backend.accounts.schema import User as UserType
from backend.chat.events import conversation_gid
from backend.chat.schema import MemberRole as CircleRole  # the same owner/admin/member roles
from backend.core import nodes, pagination
from backend.core.errors import NotFound, ValidationFailed
from backend.core.graphql import BaseMutation, register_app_errors, require_user
from backend.core.ids import decode_id, fetch_scoped
from backend.core.text import is_storable

from . import selectors, services
from .models import Block as BlockModel
from .models import Circle as CircleModel
from .models import CircleEvent as CircleEventModel
from .models import CircleMember as SeatModel
from .models import FriendRequest as FriendRequestModel
from .models import JoinRequest as JoinRequestModel
from .models import Post as PostModel
from .models import PostComment as PostCommentModel
from .models import VerificationRequest as VerificationRequestModel

CircleError = register_app_errors("Circle", "backend.circles", include=("backend.chat",))  # code: CircleErrorCode

CIRCLE, POST, COMMENT, EVENT = "Circle", "Post", "PostComment", "CircleEvent"
FRIEND_REQUEST, JOIN_REQUEST, VERIFICATION = "FriendRequest", "CircleJoinRequest", "VerificationRequest"
TRUST_FORMULA = ("score = clamp(0..100, 20 + min(tenure months, 24) + 15 if verified + 4 × min(vouches, 5) "
                 "+ 2 × min(events attended, 5) + 3 × min(loans repaid on time, 10) − 5 × late − 40 × defaulted); "
                 "0 while blacklisted with this circle told")


def _v(value):
    return getattr(value, "value", value)


class CircleKind(graphene.Enum):
    FRIENDS = "friends"
    ALUMNI = "alumni"
    COMMUNITY = "community"
    INTEREST = "interest"


class CircleVisibility(graphene.Enum):
    PUBLIC = "public"
    INVITE_ONLY = "invite_only"
    HIDDEN = "hidden"


class JoinPolicy(graphene.Enum):
    OPEN = "open"
    APPROVAL = "approval"
    INVITE_CODE = "invite_code"


class RsvpStatus(graphene.Enum):
    GOING = "going"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


def _circle_pk(value, field="circleId") -> int:
    return decode_id(value, type_name=CIRCLE, field=field)


def _user_pk(value, field="userId") -> int:
    return decode_user(value, field=field)


def _member_circle(info, circle_id, field="circleId") -> SeatModel:
    """The caller's seat in the circle; non-members get NOT_FOUND (for a hidden circle it does not exist)."""
    user = require_user(info)
    seat = selectors.seat_of(user.pk, _circle_pk(circle_id, field))
    if seat is None:
        raise NotFound(field=field)
    return seat


class TrustProfile(graphene.ObjectType):
    """A member's trust in one circle, every input shown (docs/architecture.md, "Circles")."""

    score = graphene.Int(required=True)
    formula = graphene.String(required=True)
    tenure_days = graphene.Int(required=True)
    verified = graphene.Boolean(required=True)
    vouches_received = graphene.Int(required=True)
    events_attended = graphene.Int(required=True)
    repaid_on_time = graphene.Int(required=True)
    repaid_late = graphene.Int(required=True)
    defaulted = graphene.Int(required=True)
    blacklisted = graphene.Boolean(required=True)

    @staticmethod
    def resolve_formula(root, info):
        return TRUST_FORMULA


class CircleMember(graphene.ObjectType):
    user = graphene.Field(UserType, required=True)
    role = graphene.Field(CircleRole, required=True)
    joined_at = graphene.DateTime(required=True)
    verified = graphene.Boolean(required=True)
    verified_at = graphene.DateTime()
    muted_until = graphene.DateTime()
    blacklisted = graphene.Boolean(required=True, description="公开通报: shown only in circles that were told.")

    @staticmethod
    def resolve_role(root: SeatModel, info):
        return root.role

    @staticmethod
    def resolve_verified(root: SeatModel, info):
        return root.verified_at is not None

    @staticmethod
    def resolve_blacklisted(root: SeatModel, info):
        return getattr(root, "blacklist_mark", False)


CircleMemberConnection = pagination.connection_type(CircleMember, name="CircleMember")


class Circle(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    kind = graphene.Field(CircleKind, required=True)
    name = graphene.String(required=True)
    description = graphene.String(required=True)
    avatar_url = graphene.String(required=True)
    visibility = graphene.Field(CircleVisibility, required=True)
    join_policy = graphene.Field(JoinPolicy, required=True)
    requires_verification = graphene.Boolean(required=True)
    verification_domain = graphene.String(required=True)
    members_may_message = graphene.Boolean(required=True)
    member_count = graphene.Int(required=True)
    my_role = graphene.Field(CircleRole, description="Null when I am not a member.")
    conversation_id = graphene.ID(description="The circle chat; members only.")
    my_trust = graphene.Field(TrustProfile, description="My trust profile here; members only.")

    @staticmethod
    def _my_seat(root: CircleModel, info):
        cache = info.context.__dict__.setdefault("_circle_seats", {})
        if root.pk not in cache:
            cache[root.pk] = selectors.seat_of(info.context.user.pk, root.pk)
        return cache[root.pk]

    @staticmethod
    def resolve_kind(root, info):
        return root.kind

    @staticmethod
    def resolve_visibility(root, info):
        return root.visibility

    @staticmethod
    def resolve_join_policy(root, info):
        return root.join_policy

    @staticmethod
    def resolve_my_role(root, info):
        seat = Circle._my_seat(root, info)
        return seat.role if seat else None

    @staticmethod
    def resolve_conversation_id(root, info):
        seat = Circle._my_seat(root, info)
        return conversation_gid(root.conversation_id) if seat and root.conversation_id else None

    @staticmethod
    def resolve_my_trust(root, info):
        return selectors.trust_profile(info.context.user.pk, root.pk)


CircleConnection = pagination.connection_type(Circle, name="Circle")


class FriendRequest(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    from_user = graphene.Field(UserType, required=True)
    to_user = graphene.Field(UserType, required=True)
    note = graphene.String(required=True)
    status = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)


class CircleJoinRequest(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    circle = graphene.Field(Circle, required=True)
    user = graphene.Field(UserType, required=True)
    invited_by = graphene.Field(UserType)
    note = graphene.String(required=True)
    status = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)


class VerificationRequest(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    method = graphene.String(required=True)
    status = graphene.String(required=True)
    proof_url = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)


class InviteCode(graphene.ObjectType):
    code = graphene.String(required=True)
    expires_at = graphene.DateTime(required=True)
    max_uses = graphene.Int(required=True)
    uses = graphene.Int(required=True)


class Discoverability(graphene.ObjectType):
    by_phone = graphene.Boolean(required=True, description="Others may find me by my phone number.")
    share_code = graphene.String(required=True, description="My personal QR / share code.")


class PostComment(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    author = graphene.Field(UserType, required=True)
    text = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)


class Post(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    author = graphene.Field(UserType, required=True)
    circle = graphene.Field(Circle, description="Null for a post to friends.")
    text = graphene.String(required=True)
    images = graphene.List(graphene.NonNull(graphene.String), required=True)
    card = GenericScalar(description="A product or loan-request card: {kind, ...ids}.")
    like_count = graphene.Int(required=True)
    liked_by_me = graphene.Boolean(required=True)
    comments = graphene.List(graphene.NonNull(PostComment), required=True, first=graphene.Int(default_value=10),
                             description="Only comments by me or my friends (WeChat's rule), oldest first; `first` "
                                         "(1–100) bounds them so a timeline page stays within the query cost limit.")
    created_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_liked_by_me(root: PostModel, info):
        liked = getattr(root, "liked_by_me", None)
        if liked is None:
            liked = root.likes.filter(user_id=info.context.user.pk).exists()
        return liked

    @staticmethod
    def resolve_comments(root: PostModel, info, first: int = 10):
        limit = pagination.page_size(first, default=10)
        comments = getattr(root, "visible_comments", None)
        if comments is None:
            comments = list(selectors.visible_comments(info.context.user.pk, [root.pk]))
        return comments[:limit]


PostConnection = pagination.connection_type(Post, name="Post")


class CircleEvent(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    title = graphene.String(required=True)
    description = graphene.String(required=True)
    place = graphene.String(required=True)
    starts_at = graphene.DateTime(required=True)
    capacity = graphene.Int(required=True)
    going_count = graphene.Int(required=True)
    waitlisted_count = graphene.Int(required=True)
    my_rsvp = graphene.Field(RsvpStatus)

    @staticmethod
    def resolve_going_count(root, info):
        return getattr(root, "going", 0)

    @staticmethod
    def resolve_waitlisted_count(root, info):
        return getattr(root, "waitlisted", 0)

    @staticmethod
    def resolve_my_rsvp(root, info):
        return getattr(root, "my_status", None)


def _decorate_posts(user_id: int, posts: list[PostModel]) -> list[PostModel]:
    """Likes by me and visible comments for a whole page in two queries (no N+1)."""
    ids = [p.pk for p in posts]
    liked = set(PostModel.objects.filter(pk__in=ids, likes__user_id=user_id).values_list("pk", flat=True))
    by_post: dict[int, list] = {pk: [] for pk in ids}
    for comment in selectors.visible_comments(user_id, ids):
        by_post[comment.post_id].append(comment)
    for post in posts:
        post.liked_by_me, post.visible_comments = post.pk in liked, by_post[post.pk]
    return posts


class Query(graphene.ObjectType):
    my_friends = graphene.List(graphene.NonNull(UserType), required=True)
    my_blocked_users = graphene.List(graphene.NonNull(UserType), required=True, description="Whom I blocked.")
    incoming_friend_requests = graphene.List(graphene.NonNull(FriendRequest), required=True)
    my_discoverability = graphene.Field(Discoverability, required=True)
    my_circles = graphene.List(graphene.NonNull(Circle), required=True)
    my_circle_invitations = graphene.List(graphene.NonNull(CircleJoinRequest), required=True)
    public_circles = graphene.Field(CircleConnection, required=True, first=graphene.Int(default_value=50),
                                    after=graphene.String(), kind=CircleKind(),
                                    search=graphene.String(description="Part of the name."))
    circle = graphene.Field(Circle, id=graphene.ID(required=True),
                            description="Public circles and mine; anything else is null.")
    circle_members = graphene.Field(CircleMemberConnection, required=True, circle_id=graphene.ID(required=True),
                                    first=graphene.Int(default_value=100), after=graphene.String())
    circle_join_requests = graphene.List(graphene.NonNull(CircleJoinRequest), required=True,
                                         circle_id=graphene.ID(required=True), description="Admins only.")
    trust_profile = graphene.Field(TrustProfile, circle_id=graphene.ID(required=True), user_id=graphene.ID(),
                                   description="A co-member's trust (mine without userId); members only.")
    moments = graphene.Field(PostConnection, required=True, first=graphene.Int(default_value=20),
                             after=graphene.String(), description="What I may see, newest first.")
    circle_events = graphene.List(graphene.NonNull(CircleEvent), required=True, circle_id=graphene.ID(required=True))

    @staticmethod
    def resolve_my_friends(root, info):
        user = require_user(info)
        return list(get_user_model().objects.filter(pk__in=selectors.friend_ids(user.pk))
                    .order_by("display_name", "id")[:5000])  # WeChat's cap on friends

    @staticmethod
    def resolve_my_blocked_users(root, info):
        user = require_user(info)
        return [b.blocked for b in BlockModel.objects.select_related("blocked").filter(blocker=user)[:1000]]

    @staticmethod
    def resolve_incoming_friend_requests(root, info):
        user = require_user(info)
        return list(selectors.friend_requests_of(user.pk)
                    .filter(to_user=user, status=FriendRequestModel.Status.PENDING)
                    .exclude(from_user_id__in=selectors.blocked_ids(user.pk))[:100])

    @staticmethod
    def resolve_my_discoverability(root, info):
        return services.discoverability_of(require_user(info).pk)

    @staticmethod
    def resolve_my_circles(root, info):
        user = require_user(info)
        seats = list(selectors.my_circles(user.pk)[:500])
        info.context.__dict__.setdefault("_circle_seats", {}).update({s.circle_id: s for s in seats})
        return [seat.circle for seat in seats]

    @staticmethod
    def resolve_my_circle_invitations(root, info):
        user = require_user(info)
        return list(selectors.join_requests_visible_to(user.pk)
                    .filter(user=user, status=JoinRequestModel.Status.PENDING, invited_by__isnull=False)
                    .exclude(invited_by_id__in=selectors.blocked_ids(user.pk))[:100])

    @staticmethod
    def resolve_public_circles(root, info, first=50, after=None, kind=None, search=None):
        require_user(info)
        size = pagination.page_size(first)
        after_id = pagination.decode_int_cursor(after, kind="circle")
        rows = CircleModel.objects.filter(visibility=CircleModel.Visibility.PUBLIC).order_by("-id")
        if kind is not None:
            rows = rows.filter(kind=_v(kind))
        if search:
            # PostgreSQL refuses NUL in a query parameter: such a search was an INTERNAL_ERROR (found by fuzzing)
            if not isinstance(search, str) or len(search) > 64 or not is_storable(search):
                raise ValidationFailed("Search for up to 64 characters.", code="INVALID_SEARCH", field="search")
            rows = rows.filter(name__icontains=search.strip())
        if after_id is not None:
            rows = rows.filter(id__lt=after_id)
        rows = list(rows[: size + 1])
        edges = [CircleConnection.Edge(cursor=pagination.encode_cursor("circle", c.pk), node=c) for c in rows[:size]]
        return CircleConnection(edges=edges, page_info=pagination.page_info(
            edges, has_next=len(rows) > size, has_previous=after_id is not None))

    @staticmethod
    def resolve_circle(root, info, id):
        user = require_user(info)
        try:
            return fetch_scoped(id, type_name=CIRCLE, scoped=selectors.visible_circles(user.pk))
        except NotFound:
            return None

    @staticmethod
    def resolve_circle_members(root, info, circle_id, first=100, after=None):
        seat = _member_circle(info, circle_id)
        size = pagination.page_size(first)
        after_id = pagination.decode_int_cursor(after, kind="circle-member")
        rows = selectors.members_of(seat.circle_id)
        if after_id is not None:
            rows = rows.filter(id__gt=after_id)
        rows = list(rows[: size + 1])
        page = rows[:size]
        marked = selectors.blacklisted_in_circle(seat.circle_id, [s.user_id for s in page])
        for s in page:
            s.blacklist_mark = s.user_id in marked
        edges = [CircleMemberConnection.Edge(cursor=pagination.encode_cursor("circle-member", s.pk), node=s)
                 for s in page]
        return CircleMemberConnection(edges=edges, page_info=pagination.page_info(
            edges, has_next=len(rows) > size, has_previous=after_id is not None))

    @staticmethod
    def resolve_circle_join_requests(root, info, circle_id):
        seat = _member_circle(info, circle_id)
        if seat.role not in (SeatModel.Role.OWNER, SeatModel.Role.ADMIN):
            return []
        return list(selectors.join_requests_visible_to(seat.user_id)
                    .filter(circle_id=seat.circle_id, status=JoinRequestModel.Status.PENDING,
                            invited_by__isnull=True)[:100])

    @staticmethod
    def resolve_trust_profile(root, info, circle_id, user_id=None):
        seat = _member_circle(info, circle_id)
        target = _user_pk(user_id) if user_id is not None else seat.user_id
        return selectors.trust_profile(target, seat.circle_id)

    @staticmethod
    def resolve_moments(root, info, first=20, after=None):
        user = require_user(info)
        size = pagination.page_size(first)
        before_id = pagination.decode_int_cursor(after, kind="post")
        rows = selectors.timeline(user.pk, before_id=before_id, limit=size + 1)
        page = _decorate_posts(user.pk, rows[:size])
        edges = [PostConnection.Edge(cursor=pagination.encode_cursor("post", p.pk), node=p) for p in page]
        return PostConnection(edges=edges, page_info=pagination.page_info(
            edges, has_next=len(rows) > size, has_previous=before_id is not None))

    @staticmethod
    def resolve_circle_events(root, info, circle_id):
        seat = _member_circle(info, circle_id)
        return list(selectors.events_of(seat.circle_id, seat.user_id)[:100])


# Relay node(id:) / nodes(ids:): each type scoped by the same selector its own queries and services use.
nodes.register(Circle, model=CircleModel, scoped=lambda user: selectors.visible_circles(user.pk))
nodes.register(FriendRequest, model=FriendRequestModel, scoped=lambda user: selectors.friend_requests_of(user.pk))
nodes.register(CircleJoinRequest, model=JoinRequestModel,
               scoped=lambda user: selectors.join_requests_visible_to(user.pk))
nodes.register(VerificationRequest, model=VerificationRequestModel,
               scoped=lambda user: selectors.verification_requests_visible_to(user.pk))
nodes.register(Post, model=PostModel,
               scoped=lambda user: selectors.visible_posts(user.pk).select_related("author", "circle"))
nodes.register(PostComment, model=PostCommentModel, scoped=lambda user: selectors.visible_comments_of(user.pk))
nodes.register(CircleEvent, model=CircleEventModel, scoped=lambda user: selectors.visible_events(user.pk))


# --- mutations ----------------------------------------------------------------------------------------------


def _pk(value, type_name: str, field: str) -> int:
    return decode_id(value, type_name=type_name, field=field)


class FriendRequestPayload:
    request = graphene.Field(FriendRequest)


class SendFriendRequest(FriendRequestPayload, BaseMutation):
    class Arguments:
        user_id = graphene.ID(required=True)
        note = graphene.String()

    @classmethod
    def perform(cls, root, info, user_id, note=""):
        user = require_user(info)
        return {"request": services.send_friend_request(user=user, to_user_id=_user_pk(user_id), note=note or "")}


class RespondFriendRequest(FriendRequestPayload, BaseMutation):
    class Arguments:
        request_id = graphene.ID(required=True)
        accept = graphene.Boolean(required=True)

    @classmethod
    def perform(cls, root, info, request_id, accept):
        user = require_user(info)
        pk = _pk(request_id, FRIEND_REQUEST, "requestId")
        fn = services.accept_friend_request if accept else services.decline_friend_request
        return {"request": fn(user=user, request_id=pk)}


class OkPayload:
    ok = graphene.Boolean()


class RemoveFriend(OkPayload, BaseMutation):
    class Arguments:
        user_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, user_id):
        services.remove_friend(user=require_user(info), friend_id=_user_pk(user_id))
        return {"ok": True}


class BlockUser(OkPayload, BaseMutation):
    class Arguments:
        user_id = graphene.ID(required=True)
        blocked = graphene.Boolean(required=True, description="false unblocks.")

    @classmethod
    def perform(cls, root, info, user_id, blocked):
        user = require_user(info)
        fn = services.block_user if blocked else services.unblock_user
        fn(user=user, other_id=_user_pk(user_id))
        return {"ok": True}


class SetDiscoverability(BaseMutation):
    class Arguments:
        by_phone = graphene.Boolean()
        new_share_code = graphene.Boolean()

    discoverability = graphene.Field(Discoverability)

    @classmethod
    def perform(cls, root, info, by_phone=None, new_share_code=False):
        return {"discoverability": services.set_discoverability(user=require_user(info), by_phone=by_phone,
                                                                new_share_code=bool(new_share_code))}


class FindUser(BaseMutation):
    """By phone number (only users who allow it) or by a share code. Rate-limited; otherwise NOT_FOUND."""

    class Arguments:
        phone = graphene.String()
        share_code = graphene.String()

    user = graphene.Field(UserType)

    @classmethod
    def perform(cls, root, info, phone=None, share_code=None):
        user = require_user(info)
        if (phone is None) == (share_code is None):
            raise ValidationFailed("Give a phone number or a share code.", code="INVALID", field="phone")
        if phone is not None:
            return {"user": services.find_by_phone(user=user, phone=phone)}
        return {"user": services.find_by_share_code(user=user, code=share_code)}


class MatchContacts(BaseMutation):
    """Upload address-book numbers; get back the users among them who allow being found. Nothing is stored."""

    class Arguments:
        phones = graphene.List(graphene.NonNull(graphene.String), required=True)

    users = graphene.List(graphene.NonNull(UserType), required=True)

    @classmethod
    def mutate(cls, root, info, **kwargs):
        result = super().mutate(root, info, **kwargs)
        if result.users is None:
            result.users = []
        return result

    @classmethod
    def perform(cls, root, info, phones):
        return {"users": services.match_contacts(user=require_user(info), phones=list(phones))}


class CirclePayload:
    circle = graphene.Field(Circle)


class CreateCircle(CirclePayload, BaseMutation):
    class Arguments:
        kind = CircleKind(required=True)
        name = graphene.String(required=True)
        description = graphene.String()
        avatar_url = graphene.String()
        visibility = CircleVisibility()
        join_policy = JoinPolicy()
        requires_verification = graphene.Boolean()
        verification_domain = graphene.String()
        members_may_message = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, kind, name, description="", avatar_url="", visibility=None, join_policy=None,
                requires_verification=False, verification_domain="", members_may_message=True):
        circle = services.create_circle(
            owner=require_user(info), kind=_v(kind), name=name, description=description or "",
            avatar_url=avatar_url or "", visibility=_v(visibility) or "public", join_policy=_v(join_policy) or "open",
            requires_verification=bool(requires_verification), verification_domain=verification_domain or "",
            members_may_message=members_may_message is not False)
        return {"circle": circle}


class UpdateCircle(CirclePayload, BaseMutation):
    """Admins change the description, avatar, visibility, join policy or whether members may message."""

    class Arguments:
        circle_id = graphene.ID(required=True)
        description = graphene.String()
        avatar_url = graphene.String()
        visibility = CircleVisibility()
        join_policy = JoinPolicy()
        members_may_message = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, circle_id, **changes):
        circle = services.update_circle(actor=require_user(info), circle_id=_circle_pk(circle_id),
                                        **{k: _v(v) for k, v in changes.items()})
        return {"circle": circle}


class JoinCircle(CirclePayload, BaseMutation):
    """Open circles: joined (circle set). Approval circles: a request is filed (pending true)."""

    class Arguments:
        circle_id = graphene.ID()
        invite_code = graphene.String()
        note = graphene.String()

    pending = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, circle_id=None, invite_code=None, note=""):
        user = require_user(info)
        if invite_code is not None:
            seat = services.join_with_code(user=user, code=invite_code)
            return {"circle": seat.circle, "pending": False}
        result = services.join_circle(user=user, circle_id=_circle_pk(circle_id), note=note or "")
        if isinstance(result, JoinRequestModel):
            return {"circle": None, "pending": True}
        return {"circle": result.circle, "pending": False}


class AcceptCircleInvitation(CirclePayload, BaseMutation):
    class Arguments:
        request_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, request_id):
        seat = services.accept_invitation(user=require_user(info), request_id=_pk(request_id, JOIN_REQUEST, "requestId"))
        return {"circle": seat.circle}


class DecideJoinRequest(BaseMutation):
    class Arguments:
        request_id = graphene.ID(required=True)
        approve = graphene.Boolean(required=True)

    request = graphene.Field(CircleJoinRequest)

    @classmethod
    def perform(cls, root, info, request_id, approve):
        return {"request": services.decide_join_request(actor=require_user(info), approve=approve,
                                                        request_id=_pk(request_id, JOIN_REQUEST, "requestId"))}


class CreateInviteCode(BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        expires_in_hours = graphene.Int(required=True)
        max_uses = graphene.Int(required=True)

    invite = graphene.Field(InviteCode)

    @classmethod
    def perform(cls, root, info, circle_id, expires_in_hours, max_uses):
        return {"invite": services.create_invite_code(actor=require_user(info), circle_id=_circle_pk(circle_id),
                                                      expires_in_hours=expires_in_hours, max_uses=max_uses)}


class InviteToCircle(OkPayload, BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, circle_id, user_id):
        services.invite_user(actor=require_user(info), circle_id=_circle_pk(circle_id), user_id=_user_pk(user_id))
        return {"ok": True}


class LeaveCircle(OkPayload, BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, circle_id):
        services.leave_circle(user=require_user(info), circle_id=_circle_pk(circle_id))
        return {"ok": True}


class RemoveCircleMember(OkPayload, BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, circle_id, user_id):
        services.remove_member(actor=require_user(info), circle_id=_circle_pk(circle_id), user_id=_user_pk(user_id))
        return {"ok": True}


class MuteCircleMember(OkPayload, BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)
        hours = graphene.Int(required=True, description="0 lifts the mute.")

    @classmethod
    def perform(cls, root, info, circle_id, user_id, hours):
        services.mute_member(actor=require_user(info), circle_id=_circle_pk(circle_id), user_id=_user_pk(user_id),
                             hours=hours)
        return {"ok": True}


class SetCircleMemberRole(OkPayload, BaseMutation):
    """The owner makes admins, or hands ownership over (role OWNER)."""

    class Arguments:
        circle_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)
        role = CircleRole(required=True)

    @classmethod
    def perform(cls, root, info, circle_id, user_id, role):
        services.set_member_role(actor=require_user(info), circle_id=_circle_pk(circle_id), user_id=_user_pk(user_id),
                                 role=_v(role))
        return {"ok": True}


class RequestVerification(BaseMutation):
    """Alumni verification: a school e-mail (a code is sent to it) or an uploaded proof URL for admins."""

    class Arguments:
        circle_id = graphene.ID(required=True)
        email = graphene.String()
        proof_url = graphene.String()

    verification = graphene.Field(VerificationRequest)

    @classmethod
    def perform(cls, root, info, circle_id, email=None, proof_url=None):
        user = require_user(info)
        if (email is None) == (proof_url is None):
            raise ValidationFailed("Give an e-mail or a proof URL.", code="INVALID", field="email")
        if email is not None:
            request = services.start_email_verification(user=user, circle_id=_circle_pk(circle_id), email=email)
        else:
            request = services.submit_verification_proof(user=user, circle_id=_circle_pk(circle_id),
                                                         proof_url=proof_url)
        return {"verification": request}


class ConfirmVerification(BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        code = graphene.String(required=True)

    verification = graphene.Field(VerificationRequest)

    @classmethod
    def perform(cls, root, info, circle_id, code):
        return {"verification": services.confirm_email_verification(
            user=require_user(info), circle_id=_circle_pk(circle_id), code=code)}


class DecideVerification(BaseMutation):
    class Arguments:
        request_id = graphene.ID(required=True)
        approve = graphene.Boolean(required=True)

    verification = graphene.Field(VerificationRequest)

    @classmethod
    def perform(cls, root, info, request_id, approve):
        return {"verification": services.decide_verification(
            actor=require_user(info), request_id=_pk(request_id, VERIFICATION, "requestId"), approve=approve)}


class Vouch(BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)
        withdraw = graphene.Boolean()

    trust = graphene.Field(TrustProfile, description="The vouchee's trust profile after the change.")

    @classmethod
    def perform(cls, root, info, circle_id, user_id, withdraw=False):
        user = require_user(info)
        circle, target = _circle_pk(circle_id), _user_pk(user_id)
        if withdraw:
            services.withdraw_vouch(voucher=user, circle_id=circle, vouchee_id=target)
        else:
            services.vouch(voucher=user, circle_id=circle, vouchee_id=target)
        return {"trust": selectors.trust_profile(target, circle)}


class PostPayload:
    post = graphene.Field(Post)


class PostCardInput(graphene.InputObjectType):
    kind = graphene.String(required=True, description="product or loan_request")
    ref_id = graphene.ID(required=True, description="The product's or loan request's id.")
    title = graphene.String()


class CreatePost(PostPayload, BaseMutation):
    class Arguments:
        text = graphene.String()
        images = graphene.List(graphene.NonNull(graphene.String))
        circle_id = graphene.ID(description="Post to one circle; without it, to my friends.")
        card = PostCardInput()

    @classmethod
    def perform(cls, root, info, text="", images=None, circle_id=None, card=None):
        user = require_user(info)
        card = {k: v for k, v in dict(card).items() if v is not None} if card is not None else None
        post = services.create_post(author=user, text=text or "", images=list(images or []), card=card,
                                    circle_id=_circle_pk(circle_id) if circle_id is not None else None)
        return {"post": _decorate_posts(user.pk, [post])[0]}


class DeletePost(OkPayload, BaseMutation):
    class Arguments:
        post_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, post_id):
        services.delete_post(user=require_user(info), post_id=_pk(post_id, POST, "postId"))
        return {"ok": True}


class LikePost(PostPayload, BaseMutation):
    class Arguments:
        post_id = graphene.ID(required=True)
        liked = graphene.Boolean(required=True)

    @classmethod
    def perform(cls, root, info, post_id, liked):
        user = require_user(info)
        fn = services.like_post if liked else services.unlike_post
        return {"post": _decorate_posts(user.pk, [fn(user=user, post_id=_pk(post_id, POST, "postId"))])[0]}


class CommentOnPost(BaseMutation):
    class Arguments:
        post_id = graphene.ID(required=True)
        text = graphene.String(required=True)

    comment = graphene.Field(PostComment)

    @classmethod
    def perform(cls, root, info, post_id, text):
        return {"comment": services.comment_on_post(user=require_user(info), post_id=_pk(post_id, POST, "postId"),
                                                    text=text)}


class DeleteComment(OkPayload, BaseMutation):
    class Arguments:
        comment_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, comment_id):
        services.delete_comment(user=require_user(info), comment_id=_pk(comment_id, COMMENT, "commentId"))
        return {"ok": True}


class CancelCircleEvent(OkPayload, BaseMutation):
    class Arguments:
        event_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, event_id):
        services.cancel_event(actor=require_user(info), event_id=_pk(event_id, EVENT, "eventId"))
        return {"ok": True}


class ReportAbuse(OkPayload, BaseMutation):
    class Arguments:
        reason = graphene.String(required=True)
        user_id = graphene.ID()
        circle_id = graphene.ID()
        post_id = graphene.ID()

    @classmethod
    def perform(cls, root, info, reason, user_id=None, circle_id=None, post_id=None):
        services.report_abuse(
            reporter=require_user(info), reason=reason,
            user_id=_user_pk(user_id) if user_id is not None else None,
            circle_id=_circle_pk(circle_id) if circle_id is not None else None,
            post_id=_pk(post_id, POST, "postId") if post_id is not None else None)
        return {"ok": True}


class CreateCircleEvent(BaseMutation):
    class Arguments:
        circle_id = graphene.ID(required=True)
        title = graphene.String(required=True)
        place = graphene.String(required=True)
        starts_at = graphene.DateTime(required=True)
        capacity = graphene.Int(required=True)
        description = graphene.String()

    event = graphene.Field(CircleEvent)

    @classmethod
    def perform(cls, root, info, circle_id, title, place, starts_at, capacity, description=""):
        event = services.create_event(actor=require_user(info), circle_id=_circle_pk(circle_id), title=title,
                                      place=place, starts_at=starts_at, capacity=capacity,
                                      description=description or "")
        return {"event": selectors.events_of(event.circle_id, event.created_by_id).get(pk=event.pk)}


class RsvpEvent(BaseMutation):
    class Arguments:
        event_id = graphene.ID(required=True)
        going = graphene.Boolean(required=True)

    status = graphene.Field(RsvpStatus)

    @classmethod
    def perform(cls, root, info, event_id, going):
        row = services.rsvp(user=require_user(info), event_id=_pk(event_id, EVENT, "eventId"), going=going)
        return {"status": _v(row.status)}  # a row just created holds the TextChoices member, not the string


class MarkAttendance(OkPayload, BaseMutation):
    class Arguments:
        event_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)
        attended = graphene.Boolean(required=True)

    @classmethod
    def perform(cls, root, info, event_id, user_id, attended):
        services.mark_attendance(actor=require_user(info), event_id=_pk(event_id, EVENT, "eventId"),
                                 user_id=_user_pk(user_id), attended=attended)
        return {"ok": True}


class Mutation(graphene.ObjectType):
    send_friend_request = SendFriendRequest.Field()
    respond_friend_request = RespondFriendRequest.Field()
    remove_friend = RemoveFriend.Field()
    block_user = BlockUser.Field()
    set_discoverability = SetDiscoverability.Field()
    find_user = FindUser.Field()
    match_contacts = MatchContacts.Field()
    create_circle = CreateCircle.Field()
    update_circle = UpdateCircle.Field()
    join_circle = JoinCircle.Field()
    accept_circle_invitation = AcceptCircleInvitation.Field()
    decide_join_request = DecideJoinRequest.Field()
    create_invite_code = CreateInviteCode.Field()
    invite_to_circle = InviteToCircle.Field()
    leave_circle = LeaveCircle.Field()
    remove_circle_member = RemoveCircleMember.Field()
    mute_circle_member = MuteCircleMember.Field()
    set_circle_member_role = SetCircleMemberRole.Field()
    request_verification = RequestVerification.Field()
    confirm_verification = ConfirmVerification.Field()
    decide_verification = DecideVerification.Field()
    vouch = Vouch.Field()
    create_post = CreatePost.Field()
    delete_post = DeletePost.Field()
    like_post = LikePost.Field()
    comment_on_post = CommentOnPost.Field()
    delete_comment = DeleteComment.Field()
    report_abuse = ReportAbuse.Field()
    create_circle_event = CreateCircleEvent.Field()
    rsvp_event = RsvpEvent.Field()
    cancel_circle_event = CancelCircleEvent.Field()
    mark_attendance = MarkAttendance.Field()

