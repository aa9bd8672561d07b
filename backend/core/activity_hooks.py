""""A user did something worth rewarding" listeners: apps below campaigns report activity without importing it.

Wallet (a user-to-user payment), payments (an accepted friend transfer), loans (a repayment) and referrals
(a granted reward) sit below campaigns in the layers contract, so they cannot call
campaigns.services.record_activity. They call `report_activity` here instead; campaigns registers a listener
from its AppConfig.ready() (the same style as core.message_hooks and core.reach).

Listeners run only after the reporting transaction commits (transaction.on_commit), and a listener that fails
is logged and skipped: a reward can never undo, delay or fail the money movement that earned it. Each report
carries a stable reference (e.g. the journal entry id), so the listener is idempotent and a replayed event
earns nothing twice.
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


ActivityListener = Callable[[ReportedActivity], None]

_listeners: list[ActivityListener] = []


def register_activity_listener(listener: ActivityListener) -> None:
    """Call `listener(ReportedActivity)` after each reported activity commits. Registering twice is a no-op."""
    if listener not in _listeners:
        _listeners.append(listener)


def _deliver(activity: ReportedActivity) -> None:
    for listener in list(_listeners):
        try:
            listener(activity)
        except Exception:  # a reward must never fail the action that earned it
            log.exception("activity listener %r failed for %s", listener, activity.reference)


def report_activity(*, user_id: int, kind: str, amount: int, reference: str, occurred_at: dt.datetime) -> None:
    """Report an activity from inside the transaction that made it; listeners hear of it once that commits
    (never if it rolls back)."""
    activity = ReportedActivity(user_id=user_id, kind=kind, amount=amount, reference=reference,
                                occurred_at=occurred_at)
    transaction.on_commit(lambda: _deliver(activity))
