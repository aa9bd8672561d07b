"""Every write of the payments app, one module per card family; import from `backend.payments.services`."""

from ._common import AlreadyResolved, NotParticipant, WrongConversationKind, conversation_of_member
from .bills import (
    BillInSettlement,
    BillNotOpen,
    RemindedRecently,
    ShareInSettlement,
    SplitInvalid,
    cancel_bill,
    close_bill,
    create_bill,
    decline_share,
    mark_paid_offline,
    pay_share,
    remind_bill,
    remind_due_bills,
    split_bill,
)
from .red_packets import (
    AlreadyGrabbed,
    CannotGrabOwn,
    PacketClosed,
    TooFewFen,
    TooManyParts,
    expire_red_packets,
    grab_red_packet,
    platform_sender,
    send_platform_red_packet,
    send_red_packet,
    withdraw_platform_red_packet,
)
from .settle import (
    NothingToSettle,
    SettlementAlreadyOpen,
    SettlementStarted,
    cancel_settlement,
    group_balances,
    pay_settlement,
    start_settlement,
)
from .transfers import (
    DailyLimitExceeded,
    TransferExpired,
    accept_transfer,
    decline_transfer,
    expire_transfers,
    send_transfer,
)

__all__ = [
    "AlreadyResolved", "NotParticipant", "WrongConversationKind", "conversation_of_member",
    "AlreadyGrabbed", "CannotGrabOwn", "PacketClosed", "TooFewFen", "TooManyParts", "expire_red_packets",
    "grab_red_packet", "send_red_packet", "platform_sender", "send_platform_red_packet",
    "withdraw_platform_red_packet",
    "DailyLimitExceeded", "TransferExpired", "accept_transfer", "decline_transfer", "expire_transfers",
    "send_transfer",
    "BillInSettlement", "BillNotOpen", "RemindedRecently", "ShareInSettlement", "SplitInvalid", "cancel_bill",
    "close_bill", "create_bill", "decline_share", "mark_paid_offline", "pay_share", "remind_bill",
    "remind_due_bills", "split_bill",
    "NothingToSettle", "SettlementAlreadyOpen", "SettlementStarted", "cancel_settlement", "group_balances",
    "pay_settlement", "start_settlement",
]
