"""Every write of the payments app, one module per card family; import from `backend.payments.services`."""

from ._common import AlreadyResolved, NotParticipant, WrongConversationKind
from .red_packets import (
    AlreadyGrabbed,
    CannotGrabOwn,
    PacketClosed,
    TooFewFen,
    TooManyParts,
    expire_red_packets,
    grab_red_packet,
    send_red_packet,
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
    "AlreadyResolved", "NotParticipant", "WrongConversationKind",
    "AlreadyGrabbed", "CannotGrabOwn", "PacketClosed", "TooFewFen", "TooManyParts", "expire_red_packets",
    "grab_red_packet", "send_red_packet",
    "DailyLimitExceeded", "TransferExpired", "accept_transfer", "decline_transfer", "expire_transfers",
    "send_transfer",
]
