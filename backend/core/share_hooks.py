""""A product card was shared" listeners: the referral funnel counts advisors' product shares without advisors
importing referrals (or referrals importing advisors).

advisors records every product card a user passes on (`ProductShare`); referrals counts shares on share codes
and traces clicks and sign-ups from them (CITIC: every share traced to its result). referrals registers a
listener here from its AppConfig.ready() (the style of core.message_hooks), and advisors calls
`product_shared` while sharing, before the card is posted: whatever the listeners return is added to the card
(e.g. {"referral_code": "…"}, the code a recipient's click and sign-up are attributed to).

Listeners run inside the sharing transaction; a replayed share (same client message id) is rolled back, so it
counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProductShare:
    sharer_id: int
    product_id: int  # advisors' Product id (the catalogue operations configure campaigns against)
    conversation_id: int


ShareListener = Callable[[ProductShare], dict[str, str]]

_listeners: list[ShareListener] = []


def register_share_listener(listener: ShareListener) -> None:
    """Call `listener(ProductShare) -> card fields` for every product share. Registering twice is a no-op."""
    if listener not in _listeners:
        _listeners.append(listener)


def product_shared(share: ProductShare) -> dict[str, str]:
    """advisors calls this once per new product share; returns the fields to add to the shared card."""
    extra: dict[str, str] = {}
    for listener in _listeners:
        extra.update(listener(share) or {})
    return extra
