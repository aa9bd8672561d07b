"""Every write of the advisors app, one function per use case (import from `backend.advisors.services`)."""

from ._base import ManagerFull, NoManagerAvailable, NotAClientManager
from .assignments import assign_customer, open_my_client_manager, request_different_manager
from .broadcasts import audience_of, create_broadcast, deliver_broadcast
from .desk import (
    add_note,
    create_quick_reply,
    delete_quick_reply,
    product_card,
    send_product_card,
    send_quick_reply,
    set_office_hours,
    set_tags,
    share_product,
)
from .service_accounts import (
    CannotUnsubscribe,
    Unsubscribed,
    account_by_slug,
    create_service_account,
    post_notice,
    security_account,
    security_account_id,
    subscribe,
    unsubscribe,
)
from .tiers import compute_tiers, tier_for

__all__ = [
    "ManagerFull", "NoManagerAvailable", "NotAClientManager",
    "assign_customer", "open_my_client_manager", "request_different_manager",
    "audience_of", "create_broadcast", "deliver_broadcast",
    "add_note", "create_quick_reply", "delete_quick_reply", "product_card", "send_product_card", "send_quick_reply",
    "set_office_hours", "set_tags", "share_product",
    "CannotUnsubscribe", "Unsubscribed", "account_by_slug", "create_service_account", "post_notice",
    "security_account", "security_account_id", "subscribe", "unsubscribe",
    "compute_tiers", "tier_for",
]
