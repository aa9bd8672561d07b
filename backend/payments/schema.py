"""GraphQL for money in chat: red packets, friend transfers, AA bills and settle-up. Thin: services decide,
selectors scope (only members of the object's conversation see or act; others get NOT_FOUND)."""

from __future__ import annotations

import graphene

from backend.accounts.ids import decode_user, user_gid
from backend.chat.events import CONVERSATION
from backend.core.graphql import BaseMutation, require_user
from backend.core.ids import decode_id, encode_id, fetch_scoped
from backend.wallet.schema import Fen, RiskCheckedMutation

from . import selectors, services
from .models import RedPacket as RedPacketModel
from .services import red_packets as packet_rules


def _plain(value: object) -> object:
    """A model choice as stored ("open"), also on a row just created with the TextChoices member."""
    return getattr(value, "value", value)


def _conversation_pk(value: object) -> int:
    return decode_id(value, type_name=CONVERSATION, field="conversationId")


class RedPacketKind(graphene.Enum):
    FIXED = "fixed"
    LUCKY = "lucky"


class RedPacketStatus(graphene.Enum):
    OPEN = "open"
    EMPTY = "empty"
    EXPIRED = "expired"


class RedPacketGrab(graphene.ObjectType):
    user_id = graphene.ID(required=True)
    amount = graphene.Field(Fen, required=True)
    created_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_user_id(root, info):
        return user_gid(root.user_id)


class RedPacket(graphene.ObjectType):
    """A red packet. `seedHash` is published at once, `seed` when it closes: recompute the split with the
    documented double-mean method (docs/payments.md) and check nothing was changed after sending."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    conversation_id = graphene.ID(required=True)
    sender_id = graphene.ID(required=True)
    kind = graphene.Field(RedPacketKind, required=True)
    status = graphene.Field(RedPacketStatus, required=True)
    amount = graphene.Field(Fen, required=True, description="The total, in fen.")
    count = graphene.Int(required=True)
    greeting = graphene.String(required=True)
    grabbed_count = graphene.Int(required=True)
    grabbed_amount = graphene.Field(Fen, required=True)
    refunded_amount = graphene.Field(Fen, required=True)
    seed_hash = graphene.String(required=True)
    seed = graphene.String(description="Hex; null while the packet is open.")
    grabs = graphene.List(graphene.NonNull(RedPacketGrab), required=True, description="In grab order.")
    my_grab = graphene.Field(RedPacketGrab)
    best_luck_user_id = graphene.ID(description="Lucky packets, once every part is taken.")
    created_at = graphene.DateTime(required=True)
    expires_at = graphene.DateTime(required=True)

    @classmethod
    def get_node(cls, info, id):
        return selectors.red_packets_visible_to(require_user(info).pk).filter(pk=id).first()

    @staticmethod
    def resolve_conversation_id(root, info):
        return encode_id(CONVERSATION, root.conversation_id)

    @staticmethod
    def resolve_sender_id(root, info):
        return user_gid(root.sender_id)

    @staticmethod
    def resolve_amount(root, info):
        return root.total

    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)

    @staticmethod
    def resolve_kind(root, info):
        return _plain(root.kind)

    @staticmethod
    def resolve_seed(root, info):
        return None if root.status == RedPacketModel.Status.OPEN else root.seed

    @staticmethod
    def resolve_grabs(root, info):
        return list(root.grabs.order_by("index"))

    @staticmethod
    def resolve_my_grab(root, info):
        return root.grabs.filter(user_id=require_user(info).pk).first()

    @staticmethod
    def resolve_best_luck_user_id(root, info):
        return user_gid(packet_rules.best_luck(root))


class FriendTransferStatus(graphene.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REFUNDED = "refunded"


class FriendTransfer(graphene.ObjectType):
    """好友转账: on hold until the recipient accepts or declines; refunded if not accepted within 24 hours."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    conversation_id = graphene.ID(required=True)
    sender_id = graphene.ID(required=True)
    recipient_id = graphene.ID(required=True)
    amount = graphene.Field(Fen, required=True)
    note = graphene.String(required=True)
    status = graphene.Field(FriendTransferStatus, required=True)
    created_at = graphene.DateTime(required=True)
    expires_at = graphene.DateTime(required=True)
    resolved_at = graphene.DateTime()

    @classmethod
    def get_node(cls, info, id):
        return selectors.transfers_visible_to(require_user(info).pk).filter(pk=id).first()

    @staticmethod
    def resolve_conversation_id(root, info):
        return encode_id(CONVERSATION, root.conversation_id)

    @staticmethod
    def resolve_sender_id(root, info):
        return user_gid(root.sender_id)

    @staticmethod
    def resolve_recipient_id(root, info):
        return user_gid(root.recipient_id)

    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)


class Query(graphene.ObjectType):
    red_packet = graphene.Field(RedPacket, id=graphene.ID(required=True))
    friend_transfer = graphene.Field(FriendTransfer, id=graphene.ID(required=True))

    @staticmethod
    def resolve_friend_transfer(root, info, id):
        return fetch_scoped(id, type_name="FriendTransfer",
                            scoped=selectors.transfers_visible_to(require_user(info).pk))

    @staticmethod
    def resolve_red_packet(root, info, id):
        return fetch_scoped(id, type_name="RedPacket", scoped=selectors.red_packets_visible_to(require_user(info).pk))


class SendRedPacket(RiskCheckedMutation):
    """Send a red packet into a conversation I am in. The amount leaves my wallet now; what nobody opens
    within 24 hours comes back. Retrying with the same idempotencyKey never sends twice."""

    class Arguments:
        conversation_id = graphene.ID(required=True)
        kind = graphene.Argument(RedPacketKind, required=True)
        amount = graphene.Argument(Fen, required=True, description="The total, in fen.")
        count = graphene.Int(required=True, description="Parts: 1 in a one-to-one chat, ≤ members in a group.")
        greeting = graphene.String()
        idempotency_key = graphene.String(required=True)
        risk_confirmation = graphene.String(description="One-to-one chats: a riskWarning's token, to pay anyway.")

    red_packet = graphene.Field(RedPacket)
    replayed = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, conversation_id, kind, amount, count, idempotency_key, greeting="",
                risk_confirmation=None):
        user = require_user(info)
        packet, replayed = services.send_red_packet(
            sender=user, conversation_id=_conversation_pk(conversation_id), kind=_plain(kind),
            amount=amount, count=count, greeting=greeting, idempotency_key=idempotency_key,
            risk_confirmation=risk_confirmation)
        return {"red_packet": packet, "replayed": replayed}


class GrabRedPacket(BaseMutation):
    """Open a red packet (once per member). Served in commit order while parts remain."""

    class Arguments:
        red_packet_id = graphene.ID(required=True)

    red_packet = graphene.Field(RedPacket)
    amount = graphene.Field(Fen)

    @classmethod
    def perform(cls, root, info, red_packet_id):
        user = require_user(info)
        packet = fetch_scoped(red_packet_id, type_name="RedPacket", field="redPacketId",
                              scoped=selectors.red_packets_visible_to(user.pk))
        grab = services.grab_red_packet(user=user, packet_id=packet.pk)
        packet.refresh_from_db()
        return {"red_packet": packet, "amount": grab.amount}


class SendTransfer(RiskCheckedMutation):
    """Transfer money to a member of a conversation (the other person in a one-to-one chat). It is held
    until they accept; declined or not accepted within 24 hours, it comes back."""

    class Arguments:
        conversation_id = graphene.ID(required=True)
        recipient_id = graphene.ID(description="Required in a group; in a one-to-one chat, the other person.")
        amount = graphene.Argument(Fen, required=True)
        note = graphene.String()
        idempotency_key = graphene.String(required=True)
        risk_confirmation = graphene.String(description="A riskWarning's confirmationToken, to pay anyway.")

    transfer = graphene.Field(FriendTransfer)
    replayed = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, conversation_id, amount, idempotency_key, recipient_id=None, note="",
                risk_confirmation=None):
        user = require_user(info)
        recipient = decode_user(recipient_id, field="recipientId") if recipient_id is not None else None
        transfer, replayed = services.send_transfer(
            sender=user, conversation_id=_conversation_pk(conversation_id), recipient_id=recipient, amount=amount,
            note=note or "", idempotency_key=idempotency_key, risk_confirmation=risk_confirmation)
        return {"transfer": transfer, "replayed": replayed}


class _TransferDecision(BaseMutation):
    class Meta:
        abstract = True

    class Arguments:
        transfer_id = graphene.ID(required=True)

    transfer = graphene.Field(FriendTransfer)
    service = None

    @classmethod
    def perform(cls, root, info, transfer_id):
        user = require_user(info)
        transfer = fetch_scoped(transfer_id, type_name="FriendTransfer", field="transferId",
                                scoped=selectors.transfers_visible_to(user.pk))
        return {"transfer": cls.service(user=user, transfer_id=transfer.pk)}


class AcceptTransfer(_TransferDecision):
    """The recipient takes the money (once; a transfer past 24 hours is refunded instead)."""

    service = staticmethod(services.accept_transfer)


class DeclineTransfer(_TransferDecision):
    """The recipient sends the money back at once."""

    service = staticmethod(services.decline_transfer)


class Mutation(graphene.ObjectType):
    send_red_packet = SendRedPacket.Field()
    grab_red_packet = GrabRedPacket.Field()
    send_transfer = SendTransfer.Field()
    accept_transfer = AcceptTransfer.Field()
    decline_transfer = DeclineTransfer.Field()
