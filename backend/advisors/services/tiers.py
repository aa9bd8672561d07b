"""Customer tiers (core / important / ordinary), computed nightly from documented rules.

Inputs, per customer (docs/advisors.md repeats this):
- balance_fen — wallet balance in fen, reported through core.customer_metrics by the app that owns balances
- loans_repaid — loans repaid in full, reported the same way (0 until the loans app provides it)
- referrals — referred friends who became customers, reported the same way (0 until referrals provides it)
- messages_30d — messages the customer sent in chat in the last ACTIVITY_DAYS days (read from chat)

Rules, first match wins:
- core: balance ≥ ¥500,000, or balance ≥ ¥100,000 with (loans_repaid ≥ 2 or referrals ≥ 5)
- important: balance ≥ ¥50,000, or loans_repaid ≥ 1, or referrals ≥ 2, or messages_30d ≥ 20
- ordinary: everyone else
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import transaction

from backend.chat import selectors as chat_selectors
from backend.core import clock, customer_metrics

from .. import limits
from ..models import CustomerRecord
from ._base import User

Tier = CustomerRecord.Tier
YUAN = 100  # fen
BATCH = 500


def tier_for(*, balance_fen: int, loans_repaid: int, referrals: int, messages_30d: int) -> str:
    if balance_fen >= 500_000 * YUAN or (balance_fen >= 100_000 * YUAN and (loans_repaid >= 2 or referrals >= 5)):
        return Tier.CORE
    if balance_fen >= 50_000 * YUAN or loans_repaid >= 1 or referrals >= 2 or messages_30d >= 20:
        return Tier.IMPORTANT
    return Tier.ORDINARY


def _compute_batch(user_ids: Sequence[int], now: dt.datetime) -> int:
    since = now - dt.timedelta(days=limits.get("ACTIVITY_DAYS"))
    balances = customer_metrics.measure(customer_metrics.BALANCE_FEN, user_ids)
    repaid = customer_metrics.measure(customer_metrics.LOANS_REPAID, user_ids)
    referred = customer_metrics.measure(customer_metrics.REFERRALS, user_ids)
    activity = chat_selectors.messages_sent_since(list(user_ids), since)
    changed = 0
    with transaction.atomic():
        records = {r.customer_id: r for r in CustomerRecord.objects.select_for_update().filter(customer_id__in=user_ids)}
        missing = [CustomerRecord(customer_id=uid) for uid in user_ids if uid not in records]
        for record in CustomerRecord.objects.bulk_create(missing):
            records[record.customer_id] = record
        for uid in user_ids:
            inputs = {"balance_fen": balances[uid], "loans_repaid": repaid[uid], "referrals": referred[uid],
                      "messages_30d": activity.get(uid, 0)}
            record = records[uid]
            tier = tier_for(**inputs)
            changed += tier != record.tier
            record.tier, record.tier_inputs, record.tier_computed_at = tier, inputs, now
        CustomerRecord.objects.bulk_update(list(records.values()), ["tier", "tier_inputs", "tier_computed_at"])
    return changed


def compute_tiers() -> int:
    """Recompute every active customer's tier (idempotent: the same inputs give the same tiers). Returns how
    many changed."""
    now = clock.now()
    ids = list(User.objects.filter(is_active=True, role=User.Role.CUSTOMER).order_by("pk").values_list("pk", flat=True))
    return sum(_compute_batch(ids[i:i + BATCH], now) for i in range(0, len(ids), BATCH))
