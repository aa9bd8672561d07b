"""GraphQL for notifications: the inbox (list, unread count, mark read) and push preferences. Thin."""

from __future__ import annotations

import graphene
from graphene import relay

from backend.core import nodes, pagination
from backend.core.errors import ValidationFailed
from backend.core.graphql import MAX_PAGE_SIZE, BaseMutation, register_app_errors, require_user
from backend.core.ids import decode_id

from . import selectors, services
from .models import Notification as NotificationModel
from .models import NotificationPreferences as PreferencesModel

NotificationError = register_app_errors("Notification", "backend.notifications")  # payload errors; code: NotificationErrorCode

DEFAULT_PAGE_SIZE = 20


class NotificationKind(graphene.Enum):
    MESSAGE = "message"
    MONEY = "money"
    LOAN = "loan"
    CIRCLE = "circle"
    MARKETING = "marketing"
    SYSTEM = "system"


class Notification(graphene.ObjectType):
    """One entry of the in-app inbox. `payload` carries the ids the client needs to open what it is about."""

    class Meta:
        interfaces = (relay.Node,)

    kind = graphene.Field(NotificationKind, required=True)
    event = graphene.String(
        required=True,
        description="What happened: wallet.balance_changed (payload {entry_id, wallet_id}: refetch "
                    "them with node(id:)), wallet.bank_operation_failed ({bank_operation_id}), chat.message "
                    "({conversation_id, seq}).")
    title = graphene.String(required=True)
    body = graphene.String(required=True)
    payload = graphene.JSONString(required=True)
    created_at = graphene.DateTime(required=True)
    read_at = graphene.DateTime()
    is_read = graphene.Boolean(required=True)

    @staticmethod
    def resolve_kind(root: NotificationModel, info):
        return root.kind

    @staticmethod
    def resolve_is_read(root: NotificationModel, info):
        return root.read_at is not None


nodes.register(Notification, model=NotificationModel, scoped=lambda user: selectors.inbox_of(user.pk))


class NotificationConnection(relay.Connection):
    class Meta:
        node = Notification


class QuietHours(graphene.ObjectType):
    start = graphene.String(required=True, description="HH:MM, local time.")
    end = graphene.String(required=True, description="HH:MM, local time; before `start` means the next day.")


class NotificationPreferences(graphene.ObjectType):
    """Which pushes the user wants. Security notices are always sent; marketing only after opting in."""

    messages = graphene.Boolean(required=True)
    money = graphene.Boolean(required=True)
    loans = graphene.Boolean(required=True)
    circles = graphene.Boolean(required=True)
    marketing = graphene.Boolean(required=True)
    show_previews = graphene.Boolean(
        required=True, description="Pushes show message text and amounts. Off: a generic title only."
    )
    quiet_hours = graphene.Field(QuietHours, description="Pushes wait until the end of quiet hours.")
    timezone = graphene.String(required=True)

    @staticmethod
    def resolve_quiet_hours(root: PreferencesModel, info):
        if root.quiet_start is None or root.quiet_end is None:
            return None
        return QuietHours(start=root.quiet_start.strftime("%H:%M"), end=root.quiet_end.strftime("%H:%M"))


class Query(graphene.ObjectType):
    notifications = graphene.Field(
        NotificationConnection,
        required=True,
        first=graphene.Int(description=f"Page size, {DEFAULT_PAGE_SIZE} by default, at most {MAX_PAGE_SIZE}."),
        after=graphene.String(),
        unread_only=graphene.Boolean(),
        description="My inbox, newest first. Pages are keyset-based, so new arrivals never shift them.",
    )
    unread_notification_count = graphene.Int(required=True)
    notification_preferences = graphene.Field(NotificationPreferences, required=True)

    @staticmethod
    def resolve_notifications(root, info, first=None, after=None, unread_only=False):
        user = require_user(info)
        size = pagination.page_size(first, default=DEFAULT_PAGE_SIZE)
        rows = selectors.inbox_of(user.pk)
        if unread_only:
            rows = rows.filter(read_at__isnull=True)
        if after is not None:
            rows = rows.filter(pk__lt=pagination.decode_int_cursor(after, kind="notification"))
        page = list(rows[: size + 1])
        has_next = len(page) > size
        page = page[:size]
        edges = [NotificationConnection.Edge(node=row, cursor=pagination.encode_cursor("notification", row.pk))
                 for row in page]
        return NotificationConnection(
            edges=edges, page_info=pagination.page_info(edges, has_next=has_next, has_previous=after is not None)
        )

    @staticmethod
    def resolve_unread_notification_count(root, info):
        return selectors.unread_count_of(require_user(info).pk)

    @staticmethod
    def resolve_notification_preferences(root, info):
        return selectors.preferences_of(require_user(info).pk)


class MarkNotificationsRead(BaseMutation):
    """Mark some of my notifications read, or all of them with `all: true`."""

    class Arguments:
        ids = graphene.List(graphene.NonNull(graphene.ID), description="At most 100.")
        all = graphene.Boolean()

    marked = graphene.Int()
    unread_count = graphene.Int()

    @classmethod
    def perform(cls, root, info, ids=None, all=False):
        user = require_user(info)
        if bool(all) == (ids is not None):
            raise ValidationFailed("Give either `ids` or `all: true`.", code="INVALID", field="ids")
        pks = None
        if ids is not None:
            if len(ids) > services.MAX_IDS_PER_CALL:
                raise services.TooManyIds(field="ids")
            pks = [decode_id(gid, type_name="Notification", field="ids") for gid in ids]
        marked = services.mark_read(recipient_id=user.pk, notification_ids=pks)
        return {"marked": marked, "unread_count": selectors.unread_count_of(user.pk)}


class QuietHoursInput(graphene.InputObjectType):
    start = graphene.String(required=True, description="HH:MM")
    end = graphene.String(required=True, description="HH:MM")


class UpdateNotificationPreferences(BaseMutation):
    """Change which pushes I get. Leave an argument out to keep it; `quietHours: null` turns quiet hours off."""

    class Arguments:
        messages = graphene.Boolean()
        money = graphene.Boolean()
        loans = graphene.Boolean()
        circles = graphene.Boolean()
        marketing = graphene.Boolean()
        show_previews = graphene.Boolean()
        quiet_hours = QuietHoursInput()
        timezone = graphene.String(description="IANA name, e.g. Asia/Shanghai.")

    preferences = graphene.Field(NotificationPreferences)

    @classmethod
    def perform(cls, root, info, **kwargs):
        user = require_user(info)
        changes = {name: kwargs[name] for name in ("messages", "money", "loans", "circles", "marketing",
                                                   "show_previews", "timezone") if kwargs.get(name) is not None}
        if "quiet_hours" in kwargs:
            raw = kwargs["quiet_hours"]
            changes["quiet_hours"] = None if raw is None else services.QuietHours(
                start=services.parse_quiet_time(raw.start, field="quietHours.start"),
                end=services.parse_quiet_time(raw.end, field="quietHours.end"),
            )
        return {"preferences": services.update_preferences(user_id=user.pk, **changes)}


class Mutation(graphene.ObjectType):
    mark_notifications_read = MarkNotificationsRead.Field()
    update_notification_preferences = UpdateNotificationPreferences.Field()
