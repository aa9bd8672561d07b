"""Every write of the referrals app, one module per family of use cases; import from
`backend.referrals.services`. The reads loans needs (`active_boost_bp`, `yield_doubling_on`) are in
`backend.referrals.selectors`."""

from ._common import (
    AlreadyAttributed,
    BudgetExhausted,
    CampaignNotRunning,
    CardNotUsable,
    ChannelInvalid,
    ClaimWindowClosed,
    DayInvalid,
    DeviceIdInvalid,
    IgnoredReason,
    Reason,
    ReferenceConflict,
    SelfReferral,
    ShareCodeInvalid,
    clean_scope,
)
from .admin_actions import review_flag
from .cards import choose_doubling_day, pay_doubling_day
from .qualification import process_due_qualifications, record_qualifying_event, reverse_qualifying_event
from .rewards import draw_welcome_amount
from .sharing import claim_referral, create_share_code, record_click

__all__ = [
    "AlreadyAttributed", "BudgetExhausted", "CampaignNotRunning", "CardNotUsable", "ChannelInvalid",
    "ClaimWindowClosed", "DayInvalid", "DeviceIdInvalid", "IgnoredReason", "Reason", "ReferenceConflict",
    "SelfReferral", "ShareCodeInvalid", "clean_scope",
    "review_flag",
    "choose_doubling_day", "pay_doubling_day",
    "process_due_qualifications", "record_qualifying_event", "reverse_qualifying_event",
    "draw_welcome_amount",
    "claim_referral", "create_share_code", "record_click",
]
