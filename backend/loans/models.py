"""Acquaintance loans: a request shown in some of the borrower's circles, funded by co-members' pledges (wallet
holds), disbursed through the one loan-escrow ledger account, repaid by instalment and split among lenders.

All amounts are integer fen. The borrower's identity is never stored on a row a lender reads before a default:
lenders see the per-loan pseudonym; RevealAudit records who learned the identity and when.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.core import clock

USER = settings.AUTH_USER_MODEL


class Loan(models.Model):
    class Method(models.TextChoices):
        EQUAL_INSTALMENT = "equal_instalment", "等额本息 equal instalments"
        EQUAL_PRINCIPAL = "equal_principal", "等额本金 equal principal"
        BULLET = "bullet", "到期还本付息 bullet"

    class Status(models.TextChoices):
        FUNDING = "funding"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        ACTIVE = "active"
        REPAID = "repaid"
        DEFAULTED = "defaulted"
        WRITTEN_OFF = "written_off"

    borrower = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    term_months = models.PositiveSmallIntegerField()
    rate_bp = models.PositiveIntegerField(help_text="Annual rate in basis points.")
    method = models.CharField(max_length=20, choices=Method.choices)
    purpose = models.CharField(max_length=200)
    anonymous = models.BooleanField(default=True)
    pseudonym = models.CharField(max_length=40, help_text="Per-loan name lenders see (unlinkable across loans).")
    circles = models.ManyToManyField("circles.Circle", related_name="+", through="LoanCircle")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.FUNDING)
    funded = models.BigIntegerField(default=0, help_text="Sum of live pledges.")
    funding_deadline = models.DateTimeField()
    created_at = models.DateTimeField(default=clock.now)
    disbursed_at = models.DateTimeField(null=True, blank=True)
    disburse_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    closed_at = models.DateTimeField(null=True, blank=True)
    defaulted_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    written_off_at = models.DateTimeField(null=True, blank=True)
    was_late = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "funding_deadline"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="loans_amount_positive"),
            models.CheckConstraint(condition=Q(funded__gte=0) & Q(funded__lte=models.F("amount")),
                                   name="loans_never_over_funded"),
        ]

    def __str__(self) -> str:
        return f"loan #{self.pk} {self.amount} fen {self.status}"

    @property
    def ref(self) -> str:
        return f"loan:{self.pk}"


class LoanCircle(models.Model):
    loan = models.ForeignKey(Loan, on_delete=models.CASCADE, related_name="shown_in")
    circle = models.ForeignKey("circles.Circle", on_delete=models.PROTECT, related_name="+")
    card_message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    card_version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["loan", "circle"], name="loans_circle_once")]

    def __str__(self) -> str:
        return f"loan #{self.loan_id} in circle #{self.circle_id}"


class Pledge(models.Model):
    class Status(models.TextChoices):
        HELD = "held"
        POSTED = "posted"
        VOIDED = "voided"

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="pledges")
    lender = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    hold = models.OneToOneField("wallet.Hold", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.HELD)
    idempotency_key = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=clock.now)
    received = models.BigIntegerField(default=0, help_text="Repayments paid to this pledge so far (no boost).")
    boost_received = models.BigIntegerField(default=0, help_text="Referral boost paid from the marketing budget.")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="loans_pledge_positive"),
            models.UniqueConstraint(fields=["lender", "idempotency_key"], name="loans_pledge_key_once"),
        ]

    def __str__(self) -> str:
        return f"pledge #{self.pk} {self.amount} fen {self.status}"


class Instalment(models.Model):
    loan = models.ForeignKey(Loan, on_delete=models.CASCADE, related_name="instalments")
    number = models.PositiveSmallIntegerField()
    due_date = models.DateField()
    principal = models.BigIntegerField()
    interest = models.BigIntegerField()
    paid_principal = models.BigIntegerField(default=0)
    paid_interest = models.BigIntegerField(default=0)
    penalty = models.BigIntegerField(default=0, help_text="Penalty interest accrued so far.")
    paid_penalty = models.BigIntegerField(default=0)
    waived_interest = models.BigIntegerField(default=0, help_text="Interest not owed after an early payoff.")
    penalty_through = models.DateField(null=True, blank=True)
    reminded_before = models.BooleanField(default=False)
    reminded_due = models.BooleanField(default=False)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["loan_id", "number"]
        constraints = [models.UniqueConstraint(fields=["loan", "number"], name="loans_instalment_once")]

    def __str__(self) -> str:
        return f"loan #{self.loan_id} instalment {self.number}"

    @property
    def due(self) -> int:
        """What is still owed on this instalment (penalty + interest + principal)."""
        return (self.penalty - self.paid_penalty) + (self.interest - self.paid_interest - self.waived_interest) \
            + (self.principal - self.paid_principal)


class Repayment(models.Model):
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="repayments")
    amount = models.BigIntegerField()
    penalty = models.BigIntegerField(default=0)
    interest = models.BigIntegerField(default=0)
    principal = models.BigIntegerField(default=0)
    entry = models.ForeignKey("wallet.JournalEntry", on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["loan", "idempotency_key"], name="loans_repayment_once")]

    def __str__(self) -> str:
        return f"repayment #{self.pk} {self.amount} fen"


class LenderReceipt(models.Model):
    repayment = models.ForeignKey(Repayment, on_delete=models.PROTECT, related_name="receipts")
    pledge = models.ForeignKey(Pledge, on_delete=models.PROTECT, related_name="receipts")
    amount = models.BigIntegerField()
    boost = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"receipt #{self.pk} {self.amount} fen"


class RevealAudit(models.Model):
    """Who the borrower's identity was revealed to (a lender, or a circle's chat), when, and why."""

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="reveals")
    revealed_user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    to_user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_circle = models.ForeignKey("circles.Circle", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="+")
    reason = models.CharField(max_length=60, default="default")
    revealed_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["loan", "to_user"], condition=Q(to_user__isnull=False),
                                    name="loans_reveal_user_once"),
            models.UniqueConstraint(fields=["loan", "to_circle"], condition=Q(to_circle__isnull=False),
                                    name="loans_reveal_circle_once"),
        ]

    def __str__(self) -> str:
        return f"reveal #{self.pk} of loan #{self.loan_id}"
