"""The double-entry ledger: accounts, journal entries and their legs, holds, idempotency records.

Conventions
- Amounts are integer fen (``BigIntegerField``), currency CNY.
- A leg's ``amount`` is signed from the account's point of view: positive adds to its balance, negative takes
  from it. The legs of one entry sum to zero (checked in code and, on PostgreSQL, by a deferred constraint
  trigger at commit, see migration 0002).
- ``LedgerAccount.balance`` is the cached sum of the account's legs. ``held`` is the cached sum of its pending
  holds (TigerBeetle's ``debits_pending``): held money has not moved in the ledger yet, it is only reserved,
  so ``available = balance - held``. A CHECK constraint keeps ``available >= 0`` for every account except the
  external bank's, which is the only one allowed to go negative.
- The external bank is one account in N shards (rows of kind ``external_bank``, ``shard`` 0…N-1): a top-up or
  withdrawal posts on the shard its wallet maps to, so concurrent ones do not all queue on one row. Its
  balance is the sum of its shards (``selectors.system_balance``). Every other system account is one row.
- Entries and legs are immutable: corrections are new entries (``services.reverse_entry``). PostgreSQL
  triggers refuse UPDATE and DELETE on them; the models refuse too.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from backend.core import clock


class ImmutableRow(Exception):
    """Raised when code tries to change or delete a journal entry or leg."""


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        USER_WALLET = "user_wallet", "user wallet"
        EXTERNAL_BANK = "external_bank", "external bank (settlement with the bank's core system)"
        PLATFORM_REVENUE = "platform_revenue", "platform revenue"
        MARKETING_BUDGET = "marketing_budget", "marketing budget"
        LOAN_ESCROW = "loan_escrow", "loan escrow"
        PAYMENTS_ESCROW = "payments_escrow", "payments escrow (red packets sent and not yet grabbed)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts"
    )
    balance = models.BigIntegerField(default=0, help_text="Posted balance in fen: the sum of this account's legs.")
    held = models.BigIntegerField(default=0, help_text="Sum of this account's pending holds, in fen.")
    is_frozen = models.BooleanField(
        default=False, help_text="A frozen account can start no new transfer or hold (in or out)."
    )
    frozen_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    shard = models.PositiveSmallIntegerField(
        default=0, help_text="Which row of a sharded system account this is (only the external bank has > 1)."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner"], condition=Q(kind="user_wallet"), name="wallet_one_wallet_per_user"
            ),
            models.UniqueConstraint(
                fields=["kind", "shard"], condition=~Q(kind="user_wallet"),
                name="wallet_one_system_account_per_kind_and_shard",
            ),
            models.CheckConstraint(condition=Q(shard=0) | Q(kind="external_bank"), name="wallet_only_bank_sharded"),
            models.CheckConstraint(
                condition=(Q(kind="user_wallet") & Q(owner__isnull=False))
                | (~Q(kind="user_wallet") & Q(owner__isnull=True)),
                name="wallet_owner_iff_user_wallet",
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_not_negative"),
            models.CheckConstraint(
                condition=Q(kind="external_bank") | Q(balance__gte=F("held")), name="wallet_no_overdraft"
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.USER_WALLET:
            return f"wallet #{self.pk} of user {self.owner_id}"
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def available(self) -> int:
        return self.balance - self.held

    @property
    def is_user_wallet(self) -> bool:
        return self.kind == self.Kind.USER_WALLET


class Hold(models.Model):
    """A pending transfer (two-phase): reserved on the source now, posted (in full or part) or voided once."""

    class Status(models.TextChoices):
        PENDING = "pending"
        POSTED = "posted"
        VOIDED = "voided"

    source = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="holds_out")
    destination = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="holds_in")
    amount = models.BigIntegerField()
    posted_amount = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    kind = models.CharField(max_length=30, default="hold", help_text="What the hold is for, e.g. withdrawal.")
    memo = models.CharField(max_length=140, blank=True)
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Voided by a sweep after this moment.")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "expires_at"]), models.Index(fields=["source", "status"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="wallet_hold_amount_positive"),
            models.CheckConstraint(condition=~Q(source=F("destination")), name="wallet_hold_not_to_self"),
            models.CheckConstraint(
                condition=(Q(status="posted") & Q(posted_amount__isnull=False) & Q(posted_amount__gt=0) & Q(posted_amount__lte=F("amount")))
                | (~Q(status="posted") & Q(posted_amount__isnull=True)),
                name="wallet_hold_posted_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"hold #{self.pk} {self.amount} fen {self.status}"


class JournalEntry(models.Model):
    """One business event in the ledger. Immutable; its legs sum to zero."""

    class Kind(models.TextChoices):
        TRANSFER = "transfer"
        TOP_UP = "top_up"
        WITHDRAWAL = "withdrawal"
        HOLD_POST = "hold_post"
        REVERSAL = "reversal"

    kind = models.CharField(max_length=30, help_text="transfer, top_up, withdrawal, hold_post, reversal, ...")
    memo = models.CharField(max_length=140, blank=True)
    hold = models.OneToOneField(
        Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="posting",
        help_text="The hold this entry posted (a hold is posted by at most one entry).",
    )
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversal",
        help_text="The entry this one corrects (an entry is reversed at most once).",
    )
    initiated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return f"entry #{self.pk} {self.kind}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRow("journal entries are immutable; post a reversal instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableRow("journal entries are immutable; post a reversal instead")


class Leg(models.Model):
    """One side of an entry on one account. Positive adds to the account's balance, negative takes from it."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="legs")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="legs")
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField(help_text="The account's posted balance right after this leg.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "-id"])]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="wallet_leg_amount_not_zero")]

    def __str__(self) -> str:
        return f"leg #{self.pk} {self.amount:+d} on account {self.account_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableRow("legs are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableRow("legs are immutable")


class BankOperation(models.Model):
    """A top-up or withdrawal through the bank gateway. The ledger side is a transfer or a hold."""

    class Kind(models.TextChoices):
        TOP_UP = "top_up"
        WITHDRAWAL = "withdrawal"

    class Status(models.TextChoices):
        PENDING = "pending"  # asked the gateway; no answer yet (or it was unreachable)
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="bank_operations")
    amount = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reference = models.UUIDField(default=uuid.uuid4, unique=True, help_text="Our idempotency id at the gateway.")
    gateway_reference = models.CharField(max_length=100, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    hold = models.OneToOneField(Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_operation")
    entry = models.OneToOneField(
        JournalEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="bank_operation"
    )
    created_at = models.DateTimeField(default=clock.now)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_sent_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When we last (may have) sent the request to the bank: set before each send, in its own commit.",
    )
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="wallet_bank_op_amount_positive")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.amount} fen {self.status}"


class IdempotencyRecord(models.Model):
    """(scope, key) → the first result. ``fingerprint`` is a hash of the canonical request."""

    scope = models.CharField(max_length=40, help_text="Whose key space: acct:<id> of the account paying.")
    key = models.CharField(max_length=100)
    operation = models.CharField(max_length=30)
    fingerprint = models.CharField(max_length=64)
    entry = models.ForeignKey(JournalEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    hold = models.ForeignKey(Hold, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    bank_operation = models.ForeignKey(
        BankOperation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="wallet_idempotency_scope_key")]

    def __str__(self) -> str:
        return f"{self.scope}/{self.key} → {self.operation}"


class SandboxBankRecord(models.Model):
    """SANDBOX ONLY: what the sandbox bank gateway received, so it can deduplicate and answer status queries.

    Plays the bank's side (a real bank keeps this on its own systems). Never read by the ledger: it exists so
    the sandbox can say "unknown reference" honestly and execute each reference at most once.
    """

    reference = models.CharField(max_length=100, unique=True)
    operation = models.CharField(max_length=10, help_text="collect or payout")
    amount = models.BigIntegerField()
    succeeded = models.BooleanField()
    failure_code = models.CharField(max_length=40, blank=True)
    times_received = models.PositiveIntegerField(default=1, help_text="Repeats are deduplicated, not executed.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"sandbox {self.operation} {self.reference} {self.amount} fen"


class ReversalRequest(models.Model):
    """Maker–checker for corrections: one staff member asks for an entry's reversal, with a reason; another
    approves it, and only then is the reversal posted (services.approve_reversal, exactly once)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="reversal_requests")
    reason = models.CharField(max_length=500)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=clock.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reversal = models.OneToOneField(
        JournalEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="reversal_request",
        help_text="The correcting entry the approval posted.",
    )

    class Meta:
        ordering = ["-id"]
        permissions = [("approve_reversalrequest", "Can approve or reject reversal requests")]
        constraints = [
            models.UniqueConstraint(fields=["entry"], condition=models.Q(status="pending"),
                                    name="wallet_one_pending_reversal_request"),
            # Four eyes, also in the database: the checker is never the maker.
            models.CheckConstraint(condition=~models.Q(decided_by=models.F("requested_by")),
                                   name="wallet_reversal_checker_is_not_maker"),
        ]

    def __str__(self) -> str:
        return f"reversal request #{self.pk} for entry #{self.entry_id} ({self.status})"


class RiskListEntry(models.Model):
    """融安e信: an account or phone number reported for fraud. Every payment to a person is checked against
    the active entries (``risk.check_payee``): ``warn`` asks the payer to confirm, ``block`` refuses."""

    class Level(models.TextChoices):
        WARN = "warn"
        BLOCK = "block"

    class Source(models.TextChoices):
        POLICE = "police", "public security report (公安)"
        BANK = "bank", "bank risk team"
        INDUSTRY = "industry", "industry shared list (融安e信)"
        USER_REPORTS = "user_reports", "user reports"

    account = models.ForeignKey(LedgerAccount, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="risk_entries", help_text="The reported wallet (or leave empty).")
    phone_index = models.CharField(max_length=64, blank=True, db_index=True,
                                   help_text="Blind index of the reported phone number (never the number).")
    phone_masked = models.CharField(max_length=20, blank=True, help_text="For staff: +86138****5678.")
    source = models.CharField(max_length=20, choices=Source.choices)
    level = models.CharField(max_length=5, choices=Level.choices)
    reported_on = models.DateField()
    note = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "risk list entries"
        constraints = [
            models.CheckConstraint(condition=Q(account__isnull=False) | ~Q(phone_index=""),
                                   name="wallet_risk_entry_has_target"),
        ]

    def __str__(self) -> str:
        target = f"account #{self.account_id}" if self.account_id else self.phone_masked or "phone"
        return f"{self.level} {target} ({self.source}, {self.reported_on})"


class RiskListChange(models.Model):
    """The audit trail of the risk list: who added, changed or deactivated which entry, and how it was."""

    entry = models.ForeignKey(RiskListEntry, on_delete=models.PROTECT, related_name="changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, help_text="added, changed")
    snapshot = models.JSONField(help_text="The entry's fields after the change.")
    at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action} risk entry #{self.entry_id} by {self.actor_id}"
