""""A user did something worth rewarding" listeners: apps below campaigns report activity without importing it.

Wallet (a user-to-user payment), payments (an accepted friend transfer), loans (a repayment) and referrals
(a granted reward) sit below campaigns in the layers contract, so they cannot call
campaigns.services.record_activity. They call `report_activity` here instead; campaigns registers a listener
from its AppConfig.ready() (the same style as core.message_hooks and core.reach).

Listeners run only after the reporting transaction commits (transaction.on_commit), and a listener that fails
is logged and skipped: a reward can never undo, delay or fail the money movement that earned it. Each report
carries a stable reference (e.g. the journal entry id), so the listener is idempotent and a replayed event
earns nothing twice.

Undoing: when the action is undone (wallet.services.reverse_entry reverses its journal entry, referrals claws a
reward back) the app that undid it calls `report_reversal` with the same reference; campaigns takes back what
the activity earned (campaigns.services.reverse_activity). Same delivery rules: after commit, failures logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

log = logging.getLogger("quanzi.core.activity")


@dataclass(frozen=True)
class ReportedActivity:
    user_id: int
    kind: str  # snake_case: "transfer", "loan_repayment", "referral_rewarded"
    amount: int  # fen, 0 when the activity has no amount
    reference: str  # unique per event, prefixed by the reporting app
    occurred_at: dt.datetime


@dataclass(frozen=True)
class ReportedReversal:
    reference: str  # the reference the undone activity was reported under
    occurred_at: dt.datetime


ActivityListener = Callable[[ReportedActivity], None]
ReversalListener = Callable[[ReportedReversal], None]

_listeners: list[ActivityListener] = []
_reversal_listeners: list[ReversalListener] = []


def register_activity_listener(listener: ActivityListener) -> None:
    """Call `listener(ReportedActivity)` after each reported activity commits. Registering twice is a no-op."""
    if listener not in _listeners:
        _listeners.append(listener)


def register_reversal_listener(listener: ReversalListener) -> None:
    """Call `listener(ReportedReversal)` after each reported reversal commits. Registering twice is a no-op."""
    if listener not in _reversal_listeners:
        _reversal_listeners.append(listener)


def _deliver(event: ReportedActivity | ReportedReversal, listeners: list) -> None:
    for listener in list(listeners):
        try:
            listener(event)
        except Exception:  # a reward must never fail (or block) the action that earned or undid it
            log.exception("activity listener %r failed for %s", listener, event.reference)


def report_activity(*, user_id: int, kind: str, amount: int, reference: str, occurred_at: dt.datetime) -> None:
    """Report an activity from inside the transaction that made it; listeners hear of it once that commits
    (never if it rolls back)."""
    activity = ReportedActivity(user_id=user_id, kind=kind, amount=amount, reference=reference,
                                occurred_at=occurred_at)
    transaction.on_commit(lambda: _deliver(activity, _listeners))


def report_reversal(*, reference: str, occurred_at: dt.datetime) -> None:
    """Report, from inside the transaction that undid it, that the activity reported under `reference` was
    undone; listeners hear of it once that commits. A reference nobody reported is simply ignored by them."""
    reversal = ReportedReversal(reference=reference, occurred_at=occurred_at)
    transaction.on_commit(lambda: _deliver(reversal, _reversal_listeners))
