"""Reads of the wallet, scoped to what the caller may see, and the ledger reconciliation report."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Max, Prefetch, Q, QuerySet, Sum

from backend.accounts.models import User

from .models import BankOperation, Hold, JournalEntry, LedgerAccount, Leg

# What a statement or an alert calls a system account. Users never see more than a label.
SYSTEM_LABELS = {
    LedgerAccount.Kind.EXTERNAL_BANK: "银行卡 Bank card",
    LedgerAccount.Kind.PLATFORM_REVENUE: "圈子 Quanzi",
    LedgerAccount.Kind.MARKETING_BUDGET: "圈子活动 Quanzi rewards",
    LedgerAccount.Kind.LOAN_ESCROW: "借贷托管 Loan escrow",
    LedgerAccount.Kind.PAYMENTS_ESCROW: "红包 Red packet",
}


def wallet_of(user_id: int) -> LedgerAccount | None:
    return user_wallets_of(user_id).first()


def user_wallets_of(user_id: int) -> QuerySet[LedgerAccount]:
    return LedgerAccount.objects.filter(kind=LedgerAccount.Kind.USER_WALLET, owner_id=user_id)


def statement_lines_of_user(user_id: int) -> QuerySet[Leg]:
    """Every statement line of the user's wallet (a StatementLine id is resolved through these)."""
    return statement_lines_filter(Leg.objects.filter(account__kind=LedgerAccount.Kind.USER_WALLET,
                                                     account__owner_id=user_id))


def journal_entries_of_user(user_id: int) -> QuerySet[JournalEntry]:
    """Entries that moved money on the user's wallet (the entry id a balance alert carries)."""
    return JournalEntry.objects.filter(
        pk__in=Leg.objects.filter(account__kind=LedgerAccount.Kind.USER_WALLET, account__owner_id=user_id)
        .values("entry_id"))


def bank_operations_of_user(user_id: int) -> QuerySet[BankOperation]:
    return BankOperation.objects.filter(account__kind=LedgerAccount.Kind.USER_WALLET, account__owner_id=user_id)


def payable_users_for(user: User) -> QuerySet[User]:
    """Active account holders; whom a user may actually pay is narrowed further by core.reach (send_money)."""
    return User.objects.filter(is_active=True)


def statement_lines(account: LedgerAccount) -> QuerySet[Leg]:
    """The account's legs, newest first, with everything a statement line shows loaded in two queries."""
    return statement_lines_filter(Leg.objects.filter(account=account))


def statement_lines_filter(legs: QuerySet[Leg]) -> QuerySet[Leg]:
    return (
        legs
        .select_related("entry")
        .prefetch_related(
            Prefetch("entry__legs", queryset=Leg.objects.select_related("account__owner").order_by("id"))
        )
        .order_by("-id")
    )


def pending_holds_of(account: LedgerAccount) -> QuerySet[Hold]:
    """Money reserved on this account for payments still in flight (withdrawals, red packets, …), newest first.

    One query: everything a pending line shows is on the hold row. Pass only an account the caller owns.
    """
    return (
        Hold.objects.filter(source=account, status=Hold.Status.PENDING)
        .only("id", "amount", "kind", "memo", "created_at", "expires_at")
        .order_by("-id")
    )


def bank_operations_of(user_id: int) -> QuerySet[BankOperation]:
    return BankOperation.objects.filter(account__owner_id=user_id, account__kind=LedgerAccount.Kind.USER_WALLET)


def counterparty_leg(leg: Leg, legs: list[Leg]) -> Leg | None:
    """The other side of a leg: the largest leg of the opposite sign in the same entry."""
    others = [other for other in legs if other is not leg and (other.amount > 0) != (leg.amount > 0)]
    return max(others, key=lambda other: abs(other.amount), default=None)


def account_label(account: LedgerAccount) -> str:
    """A user wallet shows its owner's display name (never a phone number); a system account its label."""
    if account.is_user_wallet:
        name = getattr(account, "owner_display_name", None)  # annotated by the ledger's lock query
        return name if name is not None else account.owner.display_name
    return SYSTEM_LABELS.get(account.kind, account.get_kind_display())


def system_balance(kind: str) -> int:
    """A system account's balance: the sum of its rows (the external bank is spread over shards)."""
    return LedgerAccount.objects.filter(kind=kind).aggregate(s=Sum("balance"))["s"] or 0


# --- reconciliation ---------------------------------------------------------------------------


@dataclass
class ReconciliationReport:
    accounts_checked: int = 0
    entries_checked: int = 0
    ledger_total: int = 0
    system_totals: dict[str, int] = field(default_factory=dict)  # kind → sum of legs over all its rows (shards)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def reconcile() -> ReconciliationReport:
    """Rebuild every balance and hold total from the rows and compare with the cached figures.

    Checks: each entry has ≥ 2 legs summing to zero; each account's cached balance equals the sum of its
    legs and its last leg's balance_after; cached held equals its pending holds; no account but the
    external bank is below zero counting holds; the whole ledger sums to zero; each posted hold has exactly
    one posting entry and no other hold has one; a sharded system account's cached balances sum to the legs
    of all its shards (``system_totals``, what ``system_balance`` reports).
    """
    report = ReconciliationReport()
    unbalanced = (
        JournalEntry.objects.annotate(total=Sum("legs__amount"), n=Count("legs"))
        .filter(Q(n__lt=2) | ~Q(total=0))
        .values_list("pk", "total", "n")
    )
    for pk, total, n in unbalanced:
        report.problems.append(f"entry #{pk}: {n} legs summing to {total or 0}")
    report.entries_checked = JournalEntry.objects.count()

    leg_sums = dict(Leg.objects.values("account").annotate(s=Sum("amount")).values_list("account", "s"))
    held_sums = dict(
        Hold.objects.filter(status=Hold.Status.PENDING)
        .values("source").annotate(s=Sum("amount")).values_list("source", "s")
    )
    last_leg_ids = Leg.objects.values("account").annotate(last=Max("id")).values_list("last", flat=True)
    last_after = dict(Leg.objects.filter(pk__in=list(last_leg_ids)).values_list("account", "balance_after"))
    cached_totals: dict[str, int] = {}
    for account in LedgerAccount.objects.order_by("id").iterator():
        report.accounts_checked += 1
        rebuilt = leg_sums.get(account.pk) or 0
        report.ledger_total += rebuilt
        if not account.is_user_wallet:
            report.system_totals[account.kind] = report.system_totals.get(account.kind, 0) + rebuilt
            cached_totals[account.kind] = cached_totals.get(account.kind, 0) + account.balance
        if rebuilt != account.balance:
            report.problems.append(f"account #{account.pk} ({account.kind}): cached balance {account.balance} "
                                   f"!= sum of legs {rebuilt}")
        if account.pk in last_after and last_after[account.pk] != account.balance:
            report.problems.append(f"account #{account.pk}: last leg balance_after {last_after[account.pk]} "
                                   f"!= cached balance {account.balance}")
        pending = held_sums.get(account.pk) or 0
        if pending != account.held:
            report.problems.append(f"account #{account.pk}: cached held {account.held} != pending holds {pending}")
        if account.kind != LedgerAccount.Kind.EXTERNAL_BANK and rebuilt - pending < 0:
            report.problems.append(f"account #{account.pk} ({account.kind}) is overdrawn: {rebuilt - pending}")
    if report.ledger_total != 0:
        report.problems.append(f"the ledger sums to {report.ledger_total}, not zero")
    for kind, total in report.system_totals.items():
        if cached_totals[kind] != total:
            report.problems.append(f"{kind}: its rows' balances sum to {cached_totals[kind]}, its legs to {total}")

    posted_without = Hold.objects.filter(status=Hold.Status.POSTED, posting__isnull=True).values_list("pk", flat=True)
    for pk in posted_without:
        report.problems.append(f"hold #{pk} is posted but has no posting entry")
    stray = JournalEntry.objects.filter(hold__isnull=False).exclude(hold__status=Hold.Status.POSTED)
    for pk, hold_id in stray.values_list("pk", "hold_id"):
        report.problems.append(f"entry #{pk} posts hold #{hold_id}, which is not posted")
    return report



def wallet_balances(user_ids) -> dict[int, int]:
    """Posted wallet balance (fen) per user, for rules computed above wallet (core.customer_metrics)."""
    return dict(LedgerAccount.objects.filter(kind=LedgerAccount.Kind.USER_WALLET, owner_id__in=list(user_ids))
                .values_list("owner_id", "balance"))
