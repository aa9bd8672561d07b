"""Red packets the platform sends from the marketing budget (e.g. a referral welcome bonus), for apps that may
not import payments' chat-bound code.

payments owns red packets, and they live in chat conversations; referrals is forbidden to import chat even
indirectly (import-linter follows chains), so it cannot import payments.services. payments registers its
implementation here from its AppConfig.ready() (the style of core.reach); promoting apps call `send` and
`withdraw`, and register a refund listener to hear when an unopened packet's money went back to the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SentPacket:
    packet_id: int
    total: int
    send_entry_id: int
    replayed: bool


@dataclass(frozen=True)
class Implementation:
    send: Callable[..., SentPacket]  # (recipient_id, amount, idempotency_key, greeting, kind, allocation)
    withdraw: Callable[[int], int]  # packet id -> amount refunded to the marketing budget


RefundListener = Callable[[int, int], None]  # (packet id, amount)

_impl: list[Implementation] = []
_refund_listeners: list[RefundListener] = []


def register(implementation: Implementation) -> None:
    """payments: the one implementation (registering it again replaces it: tests reload apps)."""
    _impl[:] = [implementation]


def _implementation() -> Implementation:
    if not _impl:
        raise RuntimeError("no platform red packets: the payments app is not installed")
    return _impl[0]


def send(*, recipient_id: int, amount: int, idempotency_key: str, greeting: str, kind: str,
         allocation: Any = None) -> SentPacket:
    """Send one person a one-part red packet from the marketing budget, once per idempotency key. `allocation`
    (the promoter's budget row, locked by the caller) is charged; wallet.BudgetExhausted when it or the
    marketing account cannot cover it (nothing created, nothing moved)."""
    return _implementation().send(recipient_id=recipient_id, amount=amount, idempotency_key=idempotency_key,
                                  greeting=greeting, kind=kind, allocation=allocation)


def withdraw(packet_id: int) -> int:
    """Take back a packet nobody opened (its money back to the budget); 0 when opened or already closed."""
    return _implementation().withdraw(packet_id)


def register_refund_listener(listener: RefundListener) -> None:
    """Hear `listener(packet_id, amount)` when an unopened platform packet's money goes back to the budget
    (expiry or withdrawal). Called in the refunding transaction, packet row locked, before the ledger moves."""
    if listener not in _refund_listeners:
        _refund_listeners.append(listener)


def refunded(packet_id: int, amount: int) -> None:
    """payments calls this for each refund of a platform packet."""
    for listener in _refund_listeners:
        listener(packet_id, amount)
