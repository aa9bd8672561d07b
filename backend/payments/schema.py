"""GraphQL for money in chat: red packets, friend transfers, AA bills and settle-up. Thin: services decide,
selectors scope (only members of the object's conversation see or act; others get NOT_FOUND)."""

from __future__ import annotations

import graphene

from backend.accounts.ids import decode_user, user_gid
from backend.chat.events import CONVERSATION
from backend.core import nodes
from backend.core.graphql import BaseMutation, register_app_errors, require_user
from backend.core.ids import decode_id, encode_id, fetch_scoped
from backend.wallet.schema import Fen, RiskCheckedMutation

from . import selectors, services
from .models import Bill as BillModel
from .models import FriendTransfer as FriendTransferModel
from .models import RedPacket as RedPacketModel
from .models import Settlement as SettlementModel
from .services import red_packets as packet_rules

PaymentError = register_app_errors("Payment", "backend.payments", include=("backend.wallet", "backend.chat"))  # code: PaymentErrorCode


def _plain(value: object) -> object:
    """A model choice as stored ("open"), also on a row just created with the TextChoices member."""
    return getattr(value, "value", value)


class _StoredStatus:
    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)


class _ConversationObject(_StoredStatus):
    """Resolvers every payments object type shares: its conversation's id and its status as stored."""

    @staticmethod
    def resolve_conversation_id(root, info):
        return encode_id(CONVERSATION, root.conversation_id)


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


class RedPacket(_ConversationObject, graphene.ObjectType):
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

    @staticmethod
    def resolve_sender_id(root, info):
        return user_gid(root.sender_id)

    @staticmethod
    def resolve_amount(root, info):
        return root.total

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


class FriendTransfer(_ConversationObject, graphene.ObjectType):
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

    @staticmethod
    def resolve_sender_id(root, info):
        return user_gid(root.sender_id)

    @staticmethod
    def resolve_recipient_id(root, info):
        return user_gid(root.recipient_id)


class AaShareStatus(graphene.Enum):
    OWN = "own"
    PENDING = "pending"
    PAID = "paid"
    PAID_OFFLINE = "paid_offline"
    DECLINED = "declined"
    REFUNDED = "refunded"
    VOID = "void"


class AaShare(_StoredStatus, graphene.ObjectType):
    """One participant's part of an AA bill."""

    id = graphene.ID(required=True)
    participant_id = graphene.ID(required=True)
    amount = graphene.Field(Fen, required=True)
    status = graphene.Field(AaShareStatus, required=True)
    in_settle_up = graphene.Boolean(required=True, description="Being cleared by an open settle-up.")
    paid_at = graphene.DateTime()

    @staticmethod
    def resolve_id(root, info):
        return encode_id("AaShare", root.pk)

    @staticmethod
    def resolve_participant_id(root, info):
        return user_gid(root.participant_id)

    @staticmethod
    def resolve_in_settle_up(root, info):
        return root.settlement_id is not None and root.status == "pending"


class AaSplitMethod(graphene.Enum):
    EQUAL = "equal"
    EXACT = "exact"
    PERCENT = "percent"
    SHARES = "shares"


class AaBillStatus(graphene.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class AaBill(_ConversationObject, graphene.ObjectType):
    """AA收款: a total split among members; each pays their share, declines, or is marked paid offline."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    conversation_id = graphene.ID(required=True)
    creator_id = graphene.ID(required=True)
    title = graphene.String(required=True)
    amount = graphene.Field(Fen, required=True)
    method = graphene.Field(AaSplitMethod, required=True)
    status = graphene.Field(AaBillStatus, required=True)
    refunded_on_cancel = graphene.Boolean(description="Cancelled bills: were paid shares refunded?")
    shares = graphene.List(graphene.NonNull(AaShare), required=True, description="By participant.")
    my_share = graphene.Field(AaShare)
    created_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_creator_id(root, info):
        return user_gid(root.creator_id)

    @staticmethod
    def resolve_amount(root, info):
        return root.total

    @staticmethod
    def resolve_method(root, info):
        return _plain(root.method)

    @staticmethod
    def resolve_shares(root, info):
        return list(root.shares.order_by("participant_id"))

    @staticmethod
    def resolve_my_share(root, info):
        return root.shares.filter(participant_id=require_user(info).pk).first()


class MemberBalance(graphene.ObjectType):
    user_id = graphene.ID(required=True)
    amount = graphene.Field(Fen, required=True, description="Positive: is owed; negative: owes.")


class SettleUpStatus(graphene.Enum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class SettleUpTransfer(graphene.ObjectType):
    debtor_id = graphene.ID(required=True)
    creditor_id = graphene.ID(required=True)
    amount = graphene.Field(Fen, required=True)
    paid = graphene.Boolean(required=True)

    @staticmethod
    def resolve_debtor_id(root, info):
        return user_gid(root.debtor_id)

    @staticmethod
    def resolve_creditor_id(root, info):
        return user_gid(root.creditor_id)

    @staticmethod
    def resolve_paid(root, info):
        return root.status == "paid"


class SettleUp(_ConversationObject, graphene.ObjectType):
    """The fewest transfers that clear the conversation's open AA bills; each debtor pays theirs in one tap."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    conversation_id = graphene.ID(required=True)
    status = graphene.Field(SettleUpStatus, required=True)
    transfers = graphene.List(graphene.NonNull(SettleUpTransfer), required=True)
    created_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_transfers(root, info):
        return list(root.transfers.order_by("id"))


# Relay node(id:) / nodes(ids:): only current members of the object's conversation, like the queries below.
nodes.register(RedPacket, model=RedPacketModel, scoped=lambda user: selectors.red_packets_visible_to(user.pk))
nodes.register(FriendTransfer, model=FriendTransferModel, scoped=lambda user: selectors.transfers_visible_to(user.pk))
nodes.register(AaBill, model=BillModel, scoped=lambda user: selectors.bills_visible_to(user.pk))
nodes.register(SettleUp, model=SettlementModel, scoped=lambda user: selectors.settlements_visible_to(user.pk))


class Query(graphene.ObjectType):
    red_packet = graphene.Field(RedPacket, id=graphene.ID(required=True))
    friend_transfer = graphene.Field(FriendTransfer, id=graphene.ID(required=True))
    aa_bill = graphene.Field(AaBill, id=graphene.ID(required=True))
    settle_up = graphene.Field(SettleUp, id=graphene.ID(required=True))
    group_balances = graphene.List(
        graphene.NonNull(MemberBalance), required=True, conversation_id=graphene.ID(required=True),
        description="What each member owes or is owed across the conversation's open AA bills (not yet in a "
                    "settle-up).")

    @staticmethod
    def resolve_aa_bill(root, info, id):
        return fetch_scoped(id, type_name="AaBill", scoped=selectors.bills_visible_to(require_user(info).pk))

    @staticmethod
    def resolve_settle_up(root, info, id):
        return fetch_scoped(id, type_name="SettleUp", scoped=selectors.settlements_visible_to(require_user(info).pk))

    @staticmethod
    def resolve_group_balances(root, info, conversation_id):
        user = require_user(info)
        conversation = services.conversation_of_member(_conversation_pk(conversation_id), user.pk)
        balances = services.group_balances(conversation.pk)
        return [MemberBalance(user_id=user_gid(uid), amount=amount) for uid, amount in sorted(balances.items())]

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


class AaParticipantInput(graphene.InputObjectType):
    user_id = graphene.ID(required=True)
    value = graphene.Int(description="exact: fen; percent: basis points (2500 = 25%); shares: a weight.")


class CreateAaBill(BaseMutation):
    """Bill members of a group or circle conversation. Shares are integer fen by the largest-remainder rule
    (ties: lower user id first); every share ≥ 1 fen."""

    class Arguments:
        conversation_id = graphene.ID(required=True)
        title = graphene.String(required=True)
        amount = graphene.Argument(Fen, required=True)
        method = graphene.Argument(AaSplitMethod, required=True)
        participants = graphene.List(graphene.NonNull(AaParticipantInput), required=True)
        idempotency_key = graphene.String(required=True)

    bill = graphene.Field(AaBill)
    replayed = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, conversation_id, title, amount, method, participants, idempotency_key):
        user = require_user(info)
        parsed = [(decode_user(p.user_id, field="participants"), p.value) for p in participants]
        bill, replayed = services.create_bill(
            creator=user, conversation_id=_conversation_pk(conversation_id), title=title, amount=amount,
            method=_plain(method), participants=parsed, idempotency_key=idempotency_key)
        return {"bill": bill, "replayed": replayed}


def _share(info, share_id):
    user = require_user(info)
    return user, fetch_scoped(share_id, type_name="AaShare", field="shareId",
                              scoped=selectors.shares_visible_to(user.pk))


class PayAaShare(RiskCheckedMutation):
    """Pay my share from my wallet to the bill's creator. Paying again changes nothing."""

    class Arguments:
        share_id = graphene.ID(required=True)
        risk_confirmation = graphene.String()

    bill = graphene.Field(AaBill)

    @classmethod
    def perform(cls, root, info, share_id, risk_confirmation=None):
        user, share = _share(info, share_id)
        share = services.pay_share(user=user, share_id=share.pk, risk_confirmation=risk_confirmation)
        return {"bill": share.bill}


class _ShareAction(BaseMutation):
    class Meta:
        abstract = True

    class Arguments:
        share_id = graphene.ID(required=True)

    bill = graphene.Field(AaBill)
    service = None

    @classmethod
    def perform(cls, root, info, share_id):
        user, share = _share(info, share_id)
        return {"bill": cls.service(user=user, share_id=share.pk).bill}


class DeclineAaShare(_ShareAction):
    """Decline my share."""

    service = staticmethod(services.decline_share)


class MarkAaSharePaidOffline(_ShareAction):
    """The creator records a share paid outside the app. Nothing moves."""

    service = staticmethod(services.mark_paid_offline)


def _bill(info, bill_id):
    user = require_user(info)
    return user, fetch_scoped(bill_id, type_name="AaBill", field="billId",
                              scoped=selectors.bills_visible_to(user.pk))


class RemindAaBill(BaseMutation):
    """The creator reminds everyone who has not paid (at most once a day)."""

    class Arguments:
        bill_id = graphene.ID(required=True)

    reminded = graphene.Int()

    @classmethod
    def perform(cls, root, info, bill_id):
        user, bill = _bill(info, bill_id)
        return {"reminded": services.remind_bill(user=user, bill_id=bill.pk)}


class CloseAaBill(BaseMutation):
    """The creator stops collecting early: paid shares are kept, unpaid ones dropped."""

    class Arguments:
        bill_id = graphene.ID(required=True)

    bill = graphene.Field(AaBill)

    @classmethod
    def perform(cls, root, info, bill_id):
        user, bill = _bill(info, bill_id)
        return {"bill": services.close_bill(user=user, bill_id=bill.pk)}


class CancelAaBill(BaseMutation):
    """The creator calls the bill off; paid shares are refunded (refundPaid) or kept. The card says which."""

    class Arguments:
        bill_id = graphene.ID(required=True)
        refund_paid = graphene.Boolean(required=True)

    bill = graphene.Field(AaBill)

    @classmethod
    def perform(cls, root, info, bill_id, refund_paid):
        user, bill = _bill(info, bill_id)
        return {"bill": services.cancel_bill(user=user, bill_id=bill.pk, refund_paid=refund_paid)}


class StartSettleUp(BaseMutation):
    """Plan the fewest transfers that clear the conversation's open AA bills."""

    class Arguments:
        conversation_id = graphene.ID(required=True)

    settle_up = graphene.Field(SettleUp)

    @classmethod
    def perform(cls, root, info, conversation_id):
        user = require_user(info)
        return {"settle_up": services.start_settlement(user=user, conversation_id=_conversation_pk(conversation_id))}


def _settlement(info, settle_up_id):
    user = require_user(info)
    return user, fetch_scoped(settle_up_id, type_name="SettleUp", field="settleUpId",
                              scoped=selectors.settlements_visible_to(user.pk))


class PaySettleUp(RiskCheckedMutation):
    """Pay everything I owe in this settle-up in one tap; the shares it covers are marked paid."""

    class Arguments:
        settle_up_id = graphene.ID(required=True)
        risk_confirmation = graphene.String()

    settle_up = graphene.Field(SettleUp)

    @classmethod
    def perform(cls, root, info, settle_up_id, risk_confirmation=None):
        user, settlement = _settlement(info, settle_up_id)
        services.pay_settlement(user=user, settlement_id=settlement.pk, risk_confirmation=risk_confirmation)
        settlement.refresh_from_db()
        return {"settle_up": settlement}


class CancelSettleUp(BaseMutation):
    """Whoever started it calls it off while nobody has paid into it."""

    class Arguments:
        settle_up_id = graphene.ID(required=True)

    settle_up = graphene.Field(SettleUp)

    @classmethod
    def perform(cls, root, info, settle_up_id):
        user, settlement = _settlement(info, settle_up_id)
        return {"settle_up": services.cancel_settlement(user=user, settlement_id=settlement.pk)}


class Mutation(graphene.ObjectType):
    send_red_packet = SendRedPacket.Field()
    grab_red_packet = GrabRedPacket.Field()
    send_transfer = SendTransfer.Field()
    accept_transfer = AcceptTransfer.Field()
    decline_transfer = DeclineTransfer.Field()
    create_aa_bill = CreateAaBill.Field()
    pay_aa_share = PayAaShare.Field()
    decline_aa_share = DeclineAaShare.Field()
    mark_aa_share_paid_offline = MarkAaSharePaidOffline.Field()
    remind_aa_bill = RemindAaBill.Field()
    close_aa_bill = CloseAaBill.Field()
    cancel_aa_bill = CancelAaBill.Field()
    start_settle_up = StartSettleUp.Field()
    pay_settle_up = PaySettleUp.Field()
    cancel_settle_up = CancelSettleUp.Field()
