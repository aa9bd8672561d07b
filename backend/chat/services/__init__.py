"""Every write of the chat app: one function per use case, each in one transaction.

The socket consumer, GraphQL and other apps (circles, payments, advisors) all call these, so the rules — who
may do what, sequence numbers, idempotency, push to idle members — live in one place. One module per family
of state changes (Zulip's `zerver/actions/`); import from `backend.chat.services`, never from a submodule.

Callers pass `actor=None` only from trusted server code (e.g. the circles app managing a circle chat).
"""

from ._base import (
    ManagedByCircle,
    Muted,
    NotAllowed,
    NotSupportedForKind,
    ReadOnlyConversation,
    SendResult,
)
from .advisor import hand_over_advisor_conversation
from .cards import CardVersionConflict, post_server_card, update_card
from .conversations import (
    add_members,
    create_circle_conversation,
    create_group,
    leave_conversation,
    open_advisor_conversation,
    open_direct_conversation,
    open_service_conversation,
    remove_member,
    rename_conversation,
    set_member_role,
)
from .messages import edit_message, post_card, post_service_notice, preview_of, recall_message, send_message
from .missed_pushes import push_missed_messages
from .notices import post_system_notice
from .presence import announce_presence
from .read_state import mark_read, relay_typing, set_muted

__all__ = [
    "CardVersionConflict", "post_server_card", "update_card",
    "ManagedByCircle", "Muted", "NotAllowed", "NotSupportedForKind", "ReadOnlyConversation", "SendResult",
    "add_members", "create_circle_conversation", "create_group", "leave_conversation",
    "open_advisor_conversation", "open_direct_conversation", "open_service_conversation", "remove_member",
    "rename_conversation", "set_member_role",
    "hand_over_advisor_conversation", "post_service_notice",
    "edit_message", "post_card", "preview_of", "recall_message", "send_message",
    "post_system_notice", "announce_presence", "mark_read", "relay_typing", "set_muted",
    "push_missed_messages",
]
