"""GraphQL for chat: my conversations, history, members, and the writes. Thin: services decide, selectors scope.

A conversation is always resolved through the caller's own membership row, so a non-member's id is
NOT_FOUND and nothing about the conversation leaks.
"""

from __future__ import annotations

import datetime as dt

import graphene
from graphene.types.generic import GenericScalar

from backend.accounts.schema import User
from backend.core import nodes, pagination
from backend.core.errors import NotFound, ValidationFailed
from backend.core.graphql import BaseMutation, register_app_errors, require_user
from backend.core.ids import MAX_PK, decode_id, fetch_scoped
from backend.notifications import selectors as notification_selectors

from . import events, selectors, services
from .models import Membership
from .models import Message as MessageModel

ChatError = register_app_errors("Chat", "backend.chat")  # payload errors; code: ChatErrorCode


class ConversationKind(graphene.Enum):
    DIRECT = "direct"
    GROUP = "group"
    CIRCLE = "circle"
    ADVISOR = "advisor"
    SERVICE = "service"


class MemberRole(graphene.Enum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class MessageKind(graphene.Enum):
    TEXT = "text"
    IMAGE = "image"
    FILE = "file"
    CARD = "card"
    SYSTEM = "system"


def _enum_value(value):
    return getattr(value, "value", value)


def _seat(info, conversation_id: object, field: str = "conversationId") -> Membership:
    user = require_user(info)
    return fetch_scoped(conversation_id, type_name=events.CONVERSATION, scoped=selectors.active_seats_of(user.pk),
                        lookup="conversation_id", field=field)


class Attachment(graphene.ObjectType):
    url = graphene.String(required=True)
    name = graphene.String()
    size = graphene.Int()
    mime_type = graphene.String()
    width = graphene.Int()
    height = graphene.Int()
    duration_ms = graphene.Int()


class Message(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    seq = graphene.Int(required=True, description="Gapless per conversation.")
    kind = graphene.Field(MessageKind, required=True)
    sender = graphene.Field(User)
    client_msg_id = graphene.String()
    body = graphene.String(description="Null once recalled.")
    attachment = graphene.Field(Attachment)
    card = GenericScalar(description="Cards: {kind, owner, ...ids, title, state, version}. Posted by the server; "
                                     "only the owner app changes `state` (each change bumps `version`).")
    system = GenericScalar(description="System messages: {event, actorId, userId?, userIds?, newOwnerId?, title?, "
                                       "role?}, camelCase, users by their global ids (the socket sends the same).")
    reply_to_seq = graphene.Int()
    mention_ids = graphene.List(graphene.NonNull(graphene.ID), required=True)
    created_at = graphene.DateTime(required=True)
    edited_at = graphene.DateTime()
    recalled = graphene.Boolean(required=True)

    @staticmethod
    def resolve_kind(root: MessageModel, info):
        return _enum_value(root.kind)  # a message just created by a service holds the model's choice member

    @staticmethod
    def resolve_sender(root: MessageModel, info):
        return root.sender

    @staticmethod
    def resolve_body(root: MessageModel, info):
        return None if root.is_recalled else root.body

    @staticmethod
    def resolve_attachment(root: MessageModel, info):
        data = events.message_data(root) if not root.is_recalled else {}
        return Attachment(**data["attachment"]) if data.get("attachment") else None

    @staticmethod
    def resolve_card(root: MessageModel, info):
        return events.card_document(root)

    @staticmethod
    def resolve_system(root: MessageModel, info):
        return events.message_data(root).get("system")

    @staticmethod
    def resolve_mention_ids(root: MessageModel, info):
        return [events.user_gid(uid) for uid in root.mentions or []]

    @staticmethod
    def resolve_recalled(root: MessageModel, info):
        return root.is_recalled


class Member(graphene.ObjectType):
    user = graphene.Field(User, required=True)
    role = graphene.Field(MemberRole, required=True)
    joined_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_role(root: Membership, info):
        return root.role


class Conversation(graphene.ObjectType):
    """A conversation as the caller sees it (resolved from the caller's membership)."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    kind = graphene.Field(ConversationKind, required=True)
    title = graphene.String(required=True, description="The group title, or the other party's name.")
    peer = graphene.Field(User, description="The other party of a direct, advisor or service conversation.")
    last_seq = graphene.Int(required=True)
    last_change = graphene.Int(required=True, description="Bumped by every edit and recall (see resume).")
    last_read_seq = graphene.Int(required=True)
    unread_count = graphene.Int(required=True)
    muted = graphene.Boolean(required=True)
    my_role = graphene.Field(MemberRole, required=True)
    member_count = graphene.Int(required=True)
    last_activity_at = graphene.DateTime(required=True)
    last_message = graphene.Field(Message)

    @staticmethod
    def resolve_id(root: Membership, info):
        return root.conversation_id

    @staticmethod
    def resolve_kind(root: Membership, info):
        return root.conversation.kind

    @staticmethod
    def resolve_title(root: Membership, info):
        return selectors.title_of(root)

    @staticmethod
    def resolve_peer(root: Membership, info):
        return selectors.peer_of(root)

    @staticmethod
    def resolve_last_seq(root: Membership, info):
        return root.conversation.last_seq

    @staticmethod
    def resolve_last_change(root: Membership, info):
        return root.conversation.last_change

    @staticmethod
    def resolve_unread_count(root: Membership, info):
        return selectors.unread_count(root)

    @staticmethod
    def resolve_muted(root: Membership, info):
        muted = getattr(root, "is_muted", None)  # annotated by the chat selectors (the one record of mutes)
        if muted is None:
            muted = notification_selectors.is_conversation_muted(root.user_id, root.conversation_id)
        return muted

    @staticmethod
    def resolve_my_role(root: Membership, info):
        return root.role

    @staticmethod
    def resolve_member_count(root: Membership, info):
        return root.conversation.member_count

    @staticmethod
    def resolve_last_activity_at(root: Membership, info):
        return root.conversation.last_activity_at

    @staticmethod
    def resolve_last_message(root: Membership, info):
        message = root.conversation.last_message
        if message is None or message.seq < root.visible_from_seq:
            return None
        return message


nodes.register(Conversation, model=Membership, scoped=lambda user: selectors.active_seats_of(user.pk),
               lookup="conversation_id")
nodes.register(Message, model=MessageModel, scoped=lambda user: selectors.visible_messages_of(user.pk))

ConversationConnection = pagination.connection_type(Conversation, name="Conversation")
ConversationEdge = ConversationConnection.Edge
MessageConnection = pagination.connection_type(
    Message, name="Message", description="Edges in ascending seq order, whichever direction was asked for."
)
MessageEdge = MessageConnection.Edge
MemberConnection = pagination.connection_type(Member, name="Member")
MemberEdge = MemberConnection.Edge


class Query(graphene.ObjectType):
    my_conversations = graphene.Field(
        ConversationConnection, required=True, first=graphene.Int(default_value=50), after=graphene.String(),
        description="My conversations, most recent activity first.",
    )
    conversation = graphene.Field(Conversation, id=graphene.ID(required=True))
    messages = graphene.Field(
        MessageConnection, required=True, conversation_id=graphene.ID(required=True),
        first=graphene.Int(), after=graphene.String(), last=graphene.Int(), before=graphene.String(),
        description="History by seq. `first`/`after` read forward; `last`/`before` (the default: the newest "
                    "50) scroll back.",
    )
    conversation_members = graphene.Field(
        MemberConnection, required=True, conversation_id=graphene.ID(required=True),
        first=graphene.Int(default_value=100), after=graphene.String(),
    )

    @staticmethod
    def resolve_my_conversations(root, info, first=50, after=None):
        user = require_user(info)
        size = pagination.page_size(first)
        position = None
        raw = pagination.decode_cursor(after, kind="activity")
        if raw is not None:
            at, _, pk = raw.rpartition("|")
            try:
                position = (dt.datetime.fromisoformat(at), int(pk))
            except ValueError as exc:
                raise ValidationFailed("Bad cursor.", code="INVALID_CURSOR", field="after") from exc
            # only what encode_cursor writes: an aware time and a pk the database can compare
            if position[0].tzinfo is None or not 0 < position[1] <= MAX_PK:
                raise ValidationFailed("Bad cursor.", code="INVALID_CURSOR", field="after")
        rows = selectors.page_of_conversations(user.pk, first=size + 1, after=position)
        page = rows[:size]
        edges = [ConversationEdge(
            cursor=pagination.encode_cursor("activity", f"{s.conversation.last_activity_at.isoformat()}|{s.conversation_id}"),
            node=s)
            for s in page]
        return ConversationConnection(
            edges=edges, page_info=pagination.page_info(edges, has_next=len(rows) > size, has_previous=after is not None))

    @staticmethod
    def resolve_conversation(root, info, id):
        try:
            return _seat(info, id, field="id")
        except NotFound:
            return None

    @staticmethod
    def resolve_messages(root, info, conversation_id, first=None, after=None, last=None, before=None):
        seat = _seat(info, conversation_id)
        after_seq = pagination.decode_int_cursor(after, kind="seq", field="after")
        before_seq = pagination.decode_int_cursor(before, kind="seq", field="before")
        if first is not None and last is not None:
            raise ValidationFailed("Use first or last, not both.", code="INVALID_PAGE_SIZE", field="first")
        if first is not None or (after_seq is not None and last is None):
            rows, more = selectors.history(seat, after_seq=after_seq or 0, before_seq=before_seq,
                                           limit=pagination.page_size(first))
            has_next, has_previous = more, (after_seq or 0) >= seat.visible_from_seq
        else:
            rows, more = selectors.history(seat, before_seq=before_seq, limit=pagination.page_size(last, field="last"))
            has_next, has_previous = before_seq is not None and before_seq <= seat.conversation.last_seq, more
        edges = [MessageEdge(cursor=pagination.encode_cursor("seq", m.seq), node=m) for m in rows]
        return MessageConnection(
            edges=edges, page_info=pagination.page_info(edges, has_next=has_next, has_previous=has_previous))

    @staticmethod
    def resolve_conversation_members(root, info, conversation_id, first=100, after=None):
        seat = _seat(info, conversation_id)
        size = pagination.page_size(first)
        after_id = pagination.decode_int_cursor(after, kind="member")
        rows = selectors.members_of(seat)
        if after_id is not None:
            rows = rows.filter(id__gt=after_id)
        rows = list(rows[: size + 1])
        edges = [MemberEdge(cursor=pagination.encode_cursor("member", s.pk), node=s) for s in rows[:size]]
        return MemberConnection(
            edges=edges, page_info=pagination.page_info(edges, has_next=len(rows) > size, has_previous=after_id is not None))


# --- mutations ---------------------------------------------------------------------------------------


def _view(user, conversation_id: int) -> Membership:
    return selectors.seat_of(user.pk, conversation_id)


def _user_ids(ids, field: str) -> list[int]:
    if len(ids) > 500:
        raise ValidationFailed("Too many users.", code="INVALID_MEMBER", field=field)
    return [events.decode_user(gid, field=field) for gid in ids]


class ConversationPayload:
    conversation = graphene.Field(Conversation)


class CreateGroup(ConversationPayload, BaseMutation):
    class Arguments:
        title = graphene.String(required=True)
        member_ids = graphene.List(graphene.NonNull(graphene.ID), required=True)

    @classmethod
    def perform(cls, root, info, title, member_ids):
        user = require_user(info)
        conversation = services.create_group(owner=user, title=title, member_ids=_user_ids(member_ids, "memberIds"))
        return {"conversation": _view(user, conversation.pk)}


class OpenDirectConversation(ConversationPayload, BaseMutation):
    """The 1:1 conversation with another user (created on first use)."""

    class Arguments:
        user_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, user_id):
        user = require_user(info)
        other = events.decode_user(user_id, field="userId")
        conversation = services.open_direct_conversation(user=user, other_user_id=other)
        return {"conversation": _view(user, conversation.pk)}


def _conversation_pk(conversation_id) -> int:
    return decode_id(conversation_id, type_name=events.CONVERSATION, field="conversationId")


class AddMembers(ConversationPayload, BaseMutation):
    class Arguments:
        conversation_id = graphene.ID(required=True)
        user_ids = graphene.List(graphene.NonNull(graphene.ID), required=True)

    @classmethod
    def perform(cls, root, info, conversation_id, user_ids):
        user = require_user(info)
        conversation = services.add_members(conversation_id=_conversation_pk(conversation_id), actor=user,
                                            user_ids=_user_ids(user_ids, "userIds"))
        return {"conversation": _view(user, conversation.pk)}


class RemoveMember(ConversationPayload, BaseMutation):
    class Arguments:
        conversation_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)

    @classmethod
    def perform(cls, root, info, conversation_id, user_id):
        user = require_user(info)
        conversation = services.remove_member(conversation_id=_conversation_pk(conversation_id), actor=user,
                                              user_id=events.decode_user(user_id, field="userId"))
        return {"conversation": _view(user, conversation.pk)}


class LeaveConversation(BaseMutation):
    class Arguments:
        conversation_id = graphene.ID(required=True)

    ok = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, conversation_id):
        user = require_user(info)
        services.leave_conversation(conversation_id=_conversation_pk(conversation_id), user=user)
        return {"ok": True}


class RenameConversation(ConversationPayload, BaseMutation):
    class Arguments:
        conversation_id = graphene.ID(required=True)
        title = graphene.String(required=True)

    @classmethod
    def perform(cls, root, info, conversation_id, title):
        user = require_user(info)
        conversation = services.rename_conversation(conversation_id=_conversation_pk(conversation_id), actor=user,
                                                    title=title)
        return {"conversation": _view(user, conversation.pk)}


class SetMemberRole(ConversationPayload, BaseMutation):
    class Arguments:
        conversation_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)
        role = MemberRole(required=True)

    @classmethod
    def perform(cls, root, info, conversation_id, user_id, role):
        user = require_user(info)
        conversation = services.set_member_role(
            conversation_id=_conversation_pk(conversation_id), actor=user,
            user_id=events.decode_user(user_id, field="userId"), role=_enum_value(role))
        return {"conversation": _view(user, conversation.pk)}


class MuteConversation(ConversationPayload, BaseMutation):
    """Muted conversations send no push notifications."""

    class Arguments:
        conversation_id = graphene.ID(required=True)
        muted = graphene.Boolean(required=True)

    @classmethod
    def perform(cls, root, info, conversation_id, muted):
        user = require_user(info)
        seat = services.set_muted(conversation_id=_conversation_pk(conversation_id), user=user, muted=muted)
        return {"conversation": _view(user, seat.conversation_id)}


class MarkConversationRead(ConversationPayload, BaseMutation):
    class Arguments:
        conversation_id = graphene.ID(required=True)
        seq = graphene.Int(required=True)

    @classmethod
    def perform(cls, root, info, conversation_id, seq):
        user = require_user(info)
        seat = services.mark_read(conversation_id=_conversation_pk(conversation_id), user=user, seq=seq)
        return {"conversation": _view(user, seat.conversation_id)}


class AttachmentInput(graphene.InputObjectType):
    url = graphene.String(required=True, description="https URL of the uploaded file.")
    name = graphene.String()
    size = graphene.Int()
    mime_type = graphene.String()
    width = graphene.Int()
    height = graphene.Int()
    duration_ms = graphene.Int()


class SendMessageInput(graphene.InputObjectType):
    conversation_id = graphene.ID(required=True)
    client_msg_id = graphene.String(required=True, description="Unique per sender; resending returns the original.")
    kind = MessageKind(description="TEXT (default), IMAGE or FILE.")
    text = graphene.String()
    attachment = graphene.Field(AttachmentInput)
    reply_to_seq = graphene.Int()
    mention_ids = graphene.List(graphene.NonNull(graphene.ID))


class SendMessage(BaseMutation):
    """The same service and idempotency as the socket's `send` frame."""

    class Arguments:
        input = SendMessageInput(required=True)

    message = graphene.Field(Message)
    duplicate = graphene.Boolean(description="True when this clientMsgId was already sent: the original.")

    @classmethod
    def perform(cls, root, info, input):
        user = require_user(info)
        attachment = dict(input.attachment) if input.attachment else None
        result = services.send_message(
            conversation_id=_conversation_pk(input.conversation_id), sender=user,
            client_msg_id=input.client_msg_id, kind=_enum_value(input.kind) or "text", text=input.text,
            attachment=attachment, reply_to_seq=input.reply_to_seq,
            mention_ids=_user_ids(input.mention_ids or [], "mentionIds"),
        )
        return {"message": result.message, "duplicate": not result.created}


def _message_pk(message_id) -> int:
    return decode_id(message_id, type_name=events.MESSAGE, field="messageId")


class EditMessage(BaseMutation):
    class Arguments:
        message_id = graphene.ID(required=True)
        text = graphene.String(required=True)

    message = graphene.Field(Message)

    @classmethod
    def perform(cls, root, info, message_id, text):
        user = require_user(info)
        return {"message": services.edit_message(message_id=_message_pk(message_id), user=user, text=text)}


class RecallMessage(BaseMutation):
    class Arguments:
        message_id = graphene.ID(required=True)

    message = graphene.Field(Message)

    @classmethod
    def perform(cls, root, info, message_id):
        user = require_user(info)
        return {"message": services.recall_message(message_id=_message_pk(message_id), user=user)}


class Mutation(graphene.ObjectType):
    create_group = CreateGroup.Field()
    open_direct_conversation = OpenDirectConversation.Field()
    add_members = AddMembers.Field()
    remove_member = RemoveMember.Field()
    leave_conversation = LeaveConversation.Field()
    rename_conversation = RenameConversation.Field()
    set_member_role = SetMemberRole.Field()
    mute_conversation = MuteConversation.Field()
    mark_conversation_read = MarkConversationRead.Field()
    send_message = SendMessage.Field()
    edit_message = EditMessage.Field()
    recall_message = RecallMessage.Field()

