"""Campaign templates: a points ledger (its own double-entry tables, never mixed with the fen ledger), coupons,
and staff-configured campaigns (lottery after a transaction, points lottery, share reward) with provably fair
draws. Amounts in fen are integers; points are integers."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from backend.core import clock


def new_seed() -> str:
    """A campaign's draw seed: 32 bytes from the OS CSPRNG, hex. Secret until the campaign ends."""
    return secrets.token_hex(32)


class UserRegion(models.Model):
    """Where a user banks, for campaigns' branch/region scopes: there is no branch field on users, so campaigns
    keep this small table; staff set it in the admin. (Customer tiers are not kept here: advisors computes them
    and campaigns reads them through core.customer_tiers.)"""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaign_region")
    region = models.CharField(max_length=60, blank=True, help_text="Branch or region code, e.g. sh-pudong.")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.region or '-'}"


# --- points ledger ----------------------------------------------------------------------------------------


class PointsAccount(models.Model):
    """A points balance: one per user, plus system accounts (where earned points come from, where spent and
    expired points go). `balance` always equals the sum of the account's legs."""

    class Kind(models.TextChoices):
        USER = "user", "user"
        ISSUED = "issued", "points issued (source of earned points)"
        SPENT = "spent", "points spent (draws)"
        EXPIRED = "expired", "points expired"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.USER)
    owner = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="points_account")
    balance = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=~Q(kind="user"), name="one_points_system_account"),
            models.CheckConstraint(condition=Q(kind="user", owner__isnull=False) | ~Q(kind="user"),
                                   name="points_user_account_has_owner"),
            models.CheckConstraint(condition=Q(balance__gte=0) | ~Q(kind="user"), name="points_balance_not_negative"),
        ]

    def __str__(self) -> str:
        return f"points {self.kind} #{self.pk}"


class PointsEntry(models.Model):
    """One balanced movement of points (its legs sum to zero)."""

    class Kind(models.TextChoices):
        EARN = "earn", "earn"
        SPEND = "spend", "spend"
        EXPIRE = "expire", "expire"
        REVERSE = "reverse", "reverse"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    reference = models.CharField(max_length=120, unique=True, help_text="Idempotency: one entry per reference.")
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name_plural = "points entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"


class PointsLeg(models.Model):
    entry = models.ForeignKey(PointsEntry, on_delete=models.PROTECT, related_name="legs")
    account = models.ForeignKey(PointsAccount, on_delete=models.PROTECT, related_name="legs")
    amount = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["account", "id"])]

    def __str__(self) -> str:
        return f"{self.amount:+d} on {self.account_id}"


class PointsLot(models.Model):
    """Points earned together and expiring together: spending takes from the lots expiring first; the expiry
    scan expires what is left of a lot after `expires_at`."""

    account = models.ForeignKey(PointsAccount, on_delete=models.PROTECT, related_name="lots")
    earned_by = models.OneToOneField(PointsEntry, on_delete=models.PROTECT, related_name="lot")
    amount = models.BigIntegerField()
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], condition=Q(remaining__gt=0), name="points_lot_open")]
        constraints = [models.CheckConstraint(condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")),
                                              name="points_lot_remaining_in_range")]

    def __str__(self) -> str:
        return f"lot {self.pk}: {self.remaining}/{self.amount}"


class PointsRule(models.Model):
    """How many points an activity other apps report earns (configured by staff)."""

    activity_kind = models.CharField(max_length=40, help_text='e.g. "transfer", "instalment_repaid", "referral".')
    min_amount = models.BigIntegerField(default=0, help_text="Fen: smaller activities earn nothing.")
    fixed_points = models.PositiveIntegerField(default=0)
    points_per_yuan = models.PositiveIntegerField(default=0, help_text="Points per whole 100 fen of the amount.")
    valid_days = models.PositiveIntegerField(default=365, help_text="Earned points expire after this many days.")
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.activity_kind}: {self.fixed_points} + {self.points_per_yuan}/yuan"


class Activity(models.Model):
    """An event another app reported (record_activity), once per reference."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=40)
    amount = models.BigIntegerField()
    reference = models.CharField(max_length=100, unique=True)
    occurred_at = models.DateTimeField()
    points = models.BigIntegerField(default=0)
    points_entry = models.ForeignKey(PointsEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reversed_at = models.DateTimeField(null=True, blank=True)
    points_owed = models.BigIntegerField(default=0, help_text="Reversed, already spent, not yet taken back: comes "
                                                              "out of the next points the user earns.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name_plural = "activities"
        indexes = [models.Index(fields=["user"], condition=Q(points_owed__gt=0), name="campaigns_points_owed")]
        constraints = [models.CheckConstraint(condition=Q(points_owed__gte=0) & Q(points_owed__lte=models.F("points")),
                                              name="campaigns_points_owed_in_range")]


# --- campaigns ----------------------------------------------------------------------------------------------

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"


class Campaign(models.Model):
    """A campaign built from a template by staff, no code: which template, where, when, what budget."""

    class Template(models.TextChoices):
        TRANSACTION_LOTTERY = "transaction_lottery", "lottery after a transaction"
        POINTS_LOTTERY = "points_lottery", "points lottery (spend points to draw)"
        SHARE_REWARD = "share_reward", "share reward (handled by referrals)"

    name = models.CharField(max_length=80)
    template = models.CharField(max_length=24, choices=Template.choices)
    regions = models.CharField(max_length=400, blank=True,
                               help_text="Comma-separated branch/region codes that may take part; empty = all.")
    tiers = models.CharField(max_length=200, blank=True,
                             help_text="Comma-separated customer tiers (core, important, ordinary) that may take "
                                       "part; empty = all. Tiers are the advisors app's.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    budget = models.BigIntegerField(default=0, help_text="Fen the campaign may pay out (cash prizes, cash-back).")
    spent = models.BigIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    trigger_kind = models.CharField(max_length=40, blank=True, help_text="Transaction lottery: qualifying kind.")
    trigger_min_amount = models.BigIntegerField(default=0, help_text="Transaction lottery: minimum amount, fen.")
    draw_cost_points = models.PositiveIntegerField(default=0, help_text="Points lottery: points per draw.")
    daily_draws_per_user = models.PositiveIntegerField(default=3)
    no_prize_weight = models.PositiveIntegerField(default=0, help_text="Odds weight of drawing nothing.")
    referral_campaign = models.ForeignKey("referrals.Campaign", null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="+", help_text="Share reward: the referrals campaign.")
    seed = models.CharField(max_length=64, default=new_seed, editable=False)
    seed_hash = models.CharField(max_length=64, editable=False, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(spent__gte=0) & Q(spent__lte=models.F("budget")),
                                              name="campaign_spent_within_budget")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.seed_hash = hashlib.sha256(self.seed.encode("ascii")).hexdigest()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        """What staff must fill in for the template they chose (the admin form shows these errors)."""
        errors = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The campaign must end after it starts."
        if self.budget is not None and self.spent is not None and self.budget < self.spent:
            errors["budget"] = f"{self.spent} fen were already paid out: the budget cannot be lower."
        if self.template == self.Template.TRANSACTION_LOTTERY and not self.trigger_kind:
            errors["trigger_kind"] = "A lottery after a transaction needs the qualifying transaction kind."
        if self.template == self.Template.SHARE_REWARD and not self.referral_campaign_id:
            errors["referral_campaign"] = "A share reward hands off to a referrals campaign: choose it."
        if errors:
            raise ValidationError(errors)

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    @property
    def region_list(self) -> list[str]:
        return [r.strip() for r in self.regions.split(",") if r.strip()]

    def has_started(self, at=None) -> bool:
        return self.starts_at <= (at or clock.now())

    def has_ended(self, at=None) -> bool:
        return self.ends_at <= (at or clock.now())

    def revealed_seed(self, at=None) -> str | None:
        """The seed, once the campaign has ended (before that only its SHA-256 is public)."""
        return self.seed if self.has_ended(at) else None


class CouponType(models.Model):
    """A kind of coupon: cash-back (fen), fee waiver, or rate boost (bp), with stock and eligibility."""

    class Kind(models.TextChoices):
        CASH_BACK = "cash_back", "cash-back (fen)"
        FEE_WAIVER = "fee_waiver", "fee waiver"
        RATE_BOOST = "rate_boost", "rate boost (bp)"

    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    value = models.PositiveIntegerField(default=0, help_text="Cash-back: fen. Rate boost: basis points.")
    stock = models.PositiveIntegerField(default=0, help_text="How many users may claim (claimable types).")
    claimed_count = models.PositiveIntegerField(default=0, editable=False)
    claimable = models.BooleanField(default=True, help_text="Users may claim it themselves (else prizes only).")
    per_user_limit = models.PositiveIntegerField(default=1)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    eligible_regions = models.CharField(max_length=400, blank=True, help_text="Comma-separated; empty = all.")
    eligible_tiers = models.CharField(max_length=200, blank=True,
                                      help_text="Comma-separated customer tiers (core, important, ordinary); "
                                                "empty = all.")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="coupon_types",
                                 help_text="Cash-back counts against this campaign's budget.")
    boost_scope = models.CharField(max_length=60, default="lending",
                                   help_text='Rate boost: what it applies to, "lending" or "lending:<product>".')
    boost_days = models.PositiveIntegerField(default=30, help_text="Rate boost: how long it lasts once redeemed.")

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(claimed_count__lte=models.F("stock")),
                                              name="coupon_claims_within_stock")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """No fee is charged anywhere in the app (wallet, payments and loans take none), so a fee waiver would
        waive nothing: staff cannot create one until a fee exists (docs/architecture.md, campaigns)."""
        errors = {}
        if self.kind == self.Kind.FEE_WAIVER and (self._state.adding or self.kind != CouponType.objects.filter(
                pk=self.pk).values_list("kind", flat=True).first()):
            errors["kind"] = "The app charges no fee yet, so a fee waiver would waive nothing."
        if self.kind == self.Kind.RATE_BOOST and not self.value:
            errors["value"] = "A rate boost adds at least 1 basis point."
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            errors["valid_until"] = "The coupon must stay valid after it becomes valid."
        if errors:
            raise ValidationError(errors)


class Coupon(models.Model):
    """One user's coupon: issued (by a prize) or claimed, then redeemed exactly once, or expired."""

    class Status(models.TextChoices):
        AVAILABLE = "available", "available"
        REDEEMED = "redeemed", "redeemed"
        EXPIRED = "expired", "expired"

    class Source(models.TextChoices):
        CLAIMED = "claimed", "claimed"
        PRIZE = "prize", "prize"
        ISSUED = "issued", "issued by staff"

    coupon_type = models.ForeignKey(CouponType, on_delete=models.PROTECT, related_name="coupons")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coupons")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.AVAILABLE)
    source = models.CharField(max_length=10, choices=Source.choices)
    issued_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeem_reference = models.CharField(max_length=100, blank=True)
    cash_back_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    rate_boost = models.OneToOneField("referrals.RateBoost", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", help_text="Rate boost: the boost its redemption granted.")

    class Meta:
        indexes = [models.Index(fields=["owner", "coupon_type"]), models.Index(fields=["status", "expires_at"])]

    def __str__(self) -> str:
        return f"coupon {self.pk} ({self.status})"


class CouponGrant(models.Model):
    """Staff gave a user a coupon (services.issue_coupon): who, to whom, why. The key makes a resubmitted admin
    form or a retried mutation issue nothing twice."""

    key = models.CharField(max_length=100, unique=True)
    coupon_type = models.ForeignKey(CouponType, on_delete=models.PROTECT, related_name="grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=200)
    coupon = models.OneToOneField(Coupon, on_delete=models.PROTECT, related_name="grant")
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"grant {self.pk}: {self.coupon_type_id} to {self.user_id}"


class Prize(models.Model):
    """One line of a lottery campaign's odds table: what it gives, its weight and its stock."""

    class Kind(models.TextChoices):
        POINTS = "points", "points"
        COUPON = "coupon", "coupon"
        CASH = "cash", "cash from the budget (fen)"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="prizes")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    points = models.PositiveIntegerField(default=0)
    coupon_type = models.ForeignKey(CouponType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cash_amount = models.PositiveIntegerField(default=0, help_text="Fen.")
    weight = models.PositiveIntegerField(help_text="Odds weight (integer): chance = weight / total weights.")
    stock = models.PositiveIntegerField()
    awarded = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(awarded__lte=models.F("stock")),
                                              name="prize_awarded_within_stock")]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.POINTS and not self.points:
            raise ValidationError({"points": "A points prize gives at least 1 point."})
        if self.kind == self.Kind.COUPON and not self.coupon_type_id:
            raise ValidationError({"coupon_type": "Choose the coupon type this prize gives."})
        if self.kind == self.Kind.CASH and not self.cash_amount:
            raise ValidationError({"cash_amount": "A cash prize pays at least 1 fen."})
        if self.stock is not None and self.stock < (self.awarded or 0):
            raise ValidationError({"stock": "Already awarded more than that."})


class DrawChance(models.Model):
    """A draw earned by a qualifying transaction (lottery after a transaction), used by one draw."""

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="chances")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    activity = models.ForeignKey(Activity, on_delete=models.PROTECT, related_name="chances")
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "activity"], name="one_chance_per_activity")]

    def __str__(self) -> str:
        return f"chance {self.pk}"


class Draw(models.Model):
    """One draw: its outcome is HMAC-SHA256(seed, "<campaign id>:<draw id>") mod the total weight, mapped onto
    the odds table (prizes in id order, then "no prize"). `slot_prize` is what the HMAC picked; `prize` what was
    awarded (null when the slot was "no prize", or the picked prize was out of stock / over budget)."""

    class Outcome(models.TextChoices):
        WON = "won", "won"
        NO_PRIZE = "no_prize", "no prize"
        OUT_OF_STOCK = "out_of_stock", "picked prize out of stock"
        OVER_BUDGET = "over_budget", "picked cash prize over budget"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="draws")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    roll = models.CharField(max_length=80, blank=True, help_text="HMAC value mod total weight (decimal).")
    total_weight = models.PositiveIntegerField(default=0)
    odds = models.JSONField(default=list, help_text="The odds table at draw time: [[prize id, weight], ...].")
    slot_prize = models.ForeignKey(Prize, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prize = models.ForeignKey(Prize, null=True, blank=True, on_delete=models.PROTECT, related_name="draws")
    outcome = models.CharField(max_length=14, choices=Outcome.choices, default=Outcome.NO_PRIZE)
    points_spent = models.PositiveIntegerField(default=0)
    chance = models.OneToOneField(DrawChance, null=True, blank=True, on_delete=models.PROTECT, related_name="draw")
    coupon = models.ForeignKey(Coupon, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    cash_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        indexes = [models.Index(fields=["campaign", "user", "created_at"])]

    def __str__(self) -> str:
        return f"draw {self.pk} ({self.outcome})"
