"""Signals for apps above payments (which payments may not import).

`platform_red_packet_refunded(packet, amount)`: what was left of a platform-funded red packet went back to the
marketing budget (expired unopened, or withdrawn by `withdraw_platform_red_packet`). Sent inside the refunding
transaction while the packet row is locked and before the ledger moves, so a receiver that credits its own
allocation (referrals' campaign `spent`) locks in the order packet → allocation → ledger accounts.
"""

from django.dispatch import Signal

platform_red_packet_refunded = Signal()
