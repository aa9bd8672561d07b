"""Every write of the circles app: one function per use case, each in one transaction.

One module per family (friends and discovery, circle membership, trust inputs, the blacklist, moments,
events); import from `backend.circles.services`, never from a submodule.
"""

from ._base import AlreadyMember, Blacklisted, NotAllowed, NotAMember
from .blacklist import blacklist_for_default, is_blacklisted, lift_blacklist, record_admin_change
from .events import cancel_event, create_event, mark_attendance, rsvp, send_event_reminders
from .friends import (
    accept_friend_request,
    block_user,
    decline_friend_request,
    discoverability_of,
    find_by_phone,
    find_by_share_code,
    match_contacts,
    remove_friend,
    send_friend_request,
    set_discoverability,
    unblock_user,
)
from .membership import (
    accept_invitation,
    confirm_email_verification,
    create_circle,
    create_invite_code,
    decide_join_request,
    decide_verification,
    invite_user,
    join_circle,
    join_with_code,
    leave_circle,
    mute_member,
    remove_member,
    set_member_role,
    start_email_verification,
    submit_verification_proof,
    update_circle,
)
from .moments import (
    comment_on_post,
    create_post,
    delete_comment,
    delete_post,
    like_post,
    report_abuse,
    unlike_post,
)
from .trust import record_loan_outcome, vouch, withdraw_vouch

__all__ = [
    "AlreadyMember", "Blacklisted", "NotAllowed", "NotAMember",
    "blacklist_for_default", "is_blacklisted", "lift_blacklist", "record_admin_change",
    "cancel_event", "create_event", "mark_attendance", "rsvp", "send_event_reminders",
    "accept_friend_request", "block_user", "decline_friend_request", "discoverability_of", "find_by_phone",
    "find_by_share_code", "match_contacts", "remove_friend", "send_friend_request", "set_discoverability",
    "unblock_user",
    "accept_invitation", "confirm_email_verification", "create_circle", "create_invite_code",
    "decide_join_request", "decide_verification", "invite_user", "join_circle", "join_with_code", "leave_circle",
    "mute_member", "remove_member", "set_member_role", "start_email_verification", "submit_verification_proof",
    "update_circle",
    "comment_on_post", "create_post", "delete_comment", "delete_post", "like_post", "report_abuse", "unlike_post",
    "record_loan_outcome", "vouch", "withdraw_vouch",
]
