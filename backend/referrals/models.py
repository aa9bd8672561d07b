"""Referrals: campaigns, share codes, clicks, attributions, qualifying events, rewards, rate boosts,
yield-doubling cards and abuse flags.

The funnel of a share code is read from these rows: shares (ShareCode.share_count) → clicks (ShareClick) →
sign-ups (Attribution) → qualified (Attribution.qualified_at) → rewarded (Reward granted, not clawed back).
Money (welcome bonuses, clawbacks, doubling-day payouts) moves only through wallet.services (the welcome bonus
as a platform red packet through payments); the rows here reference the journal entries and the packet.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from backend.core import clock

USER = settings.AUTH_USER_MODEL
LENDING = "lending"


class Campaign(models.Model):
    """What is shared, what a qualified referee earns the referrer and themselves, and the budget it comes from.

    Configured by operations in the admin."""

    name = models.CharField(max_length=100)
    scope = models.CharField(
        max_length=60, default=LENDING,
        help_text='What is shared and what the boost applies to: "lending" (lending as a whole) or '
                  '"lending:<product code>" for one named product.')
    boost_bp = models.PositiveIntegerField(default=30, help_text="Rate boost per qualified referee, basis points.")
    cap_bp = models.PositiveIntegerField(default=300, help_text="Most a referrer's boosts may add up to, bp.")
    boost_days = models.PositiveIntegerField(default=365, help_text="How long each boost lasts.")
    welcome_min = models.BigIntegerField(default=5_000, help_text="Welcome bonus lower bound, fen (50 yuan).")
    welcome_max = models.BigIntegerField(default=50_000, help_text="Welcome bonus upper bound, fen (500 yuan).")
    shared_product_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="A product in the client managers' catalogue (advisors Product id): "
                                         "every share of its card counts as a chat share on the sharer's code.")
    qualifying_kind = models.CharField(max_length=40, default="lending_pledge_disbursed",
                                       help_text="The event kind products report that qualifies a referee.")
    qualifying_min_amount = models.BigIntegerField(default=100, help_text="At least this much, fen.")
    holding_days = models.PositiveIntegerField(default=7, help_text="The action must stand this long first.")
    awards_doubling_card = models.BooleanField(
        default=False, help_text="Each reward also gives the referrer a yield-doubling card (理财通-style).")
    budget = models.BigIntegerField(help_text="Most this campaign may pay out of the marketing budget, fen.")
    spent = models.BigIntegerField(default=0, help_text="Paid out so far (net of clawbacks), fen.")
    daily_rewards_per_referrer = models.PositiveIntegerField(
        default=10, help_text="Abuse rule: at most this many rewards per referrer per calendar day (UTC).")
    starts_at = models.DateTimeField(default=clock.now)
    ends_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(welcome_min__gte=0) & Q(welcome_max__gte=F("welcome_min")),
                                   name="referrals_campaign_bonus_range"),
            models.CheckConstraint(condition=Q(budget__gte=0) & Q(spent__gte=0) & Q(spent__lte=F("budget")),
                                   name="referrals_campaign_budget_never_overspent"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    def clean(self) -> None:
        errors = {}
        if self.welcome_max is not None and self.welcome_min is not None and self.welcome_max < self.welcome_min:
            errors["welcome_max"] = "The upper bound is below the lower bound."
        if self.budget is not None and self.budget < self.spent:
            errors["budget"] = f"{self.spent} fen are already paid out: the budget cannot be lower."
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The campaign must end after it starts."
        if errors:
            raise ValidationError(errors)

    def is_running(self, at=None) -> bool:
        at = at or clock.now()
        return self.is_active and self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


class ShareCode(models.Model):
    """One user's link for one campaign on one channel. Staff (client managers) get their own leaderboard."""

    class Channel(models.TextChoices):
        CHAT = "chat"
        MOMENTS = "moments"
        EXTERNAL = "external"

    code = models.CharField(max_length=16, unique=True)
    owner = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="share_codes")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    is_staff = models.BooleanField(default=False, help_text="The owner was a client manager when it was made.")
    share_count = models.PositiveIntegerField(default=1, help_text="Times the owner shared it.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["owner", "campaign", "channel"],
                                               name="referrals_one_code_per_channel")]

    def __str__(self) -> str:
        return self.code


class ShareClick(models.Model):
    """A click on a share link, one per device per day (device ids are stored as keyed hashes)."""

    share_code = models.ForeignKey(ShareCode, on_delete=models.CASCADE, related_name="clicks")
    device_hash = models.CharField(max_length=64)
    day = models.DateField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["share_code", "device_hash", "day"],
                                               name="referrals_click_once_per_device_day")]

    def __str__(self) -> str:
        return f"click on {self.share_code_id} ({self.day})"


class Attribution(models.Model):
    """The referee was brought by the referrer through a share code. First touch wins: one per referee, ever."""

    referee = models.OneToOneField(USER, on_delete=models.PROTECT, related_name="+")
    referrer = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    share_code = models.ForeignKey(ShareCode, on_delete=models.PROTECT, related_name="attributions")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="attributions")
    device_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    qualified_at = models.DateTimeField(null=True, blank=True,
                                        help_text="The qualifying action settled and its holding period passed.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["referrer", "created_at"])]

    def __str__(self) -> str:
        return f"user {self.referee_id} via {self.referrer_id}"


class QualifyingEvent(models.Model):
    """An action a product reported (e.g. a lending pledge disbursed). `reference` is the product's own id."""

    class Status(models.TextChoices):
        HOLDING = "holding"  # counts once its holding period passes
        SETTLED = "settled"  # processed after the holding period (see the reward for the outcome)
        REVERSED = "reversed"  # undone by the product
        IGNORED = "ignored"  # not a qualifying action for an attributed referee (recorded for the audit)

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=40)
    amount = models.BigIntegerField()
    reference = models.CharField(max_length=100, unique=True)
    occurred_at = models.DateTimeField()
    settles_at = models.DateTimeField(null=True, blank=True)
    attribution = models.ForeignKey(Attribution, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="events")
    status = models.CharField(max_length=10, choices=Status.choices)
    ignored_reason = models.CharField(max_length=40, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "settles_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference} ({self.status})"


class ReferrerState(models.Model):
    """One row per referrer, locked while granting or clawing back its rewards, so concurrent qualifications
    for one referrer serialize and their boosts never pass the cap."""

    user = models.OneToOneField(USER, on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"referrer {self.user_id}"


class Reward(models.Model):
    """The outcome of one referee's qualification: granted (boost + welcome bonus), rejected (with a reason
    code), or clawed back after a reversal."""

    class Status(models.TextChoices):
        GRANTED = "granted"
        REJECTED = "rejected"
        CLAWED_BACK = "clawed_back"

    attribution = models.OneToOneField(Attribution, on_delete=models.PROTECT, related_name="reward")
    event = models.ForeignKey(QualifyingEvent, on_delete=models.PROTECT, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="rewards")
    referrer = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    referee = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices)
    reason_code = models.CharField(max_length=40, blank=True, help_text="Why it was rejected or clawed back.")
    boost_bp = models.PositiveIntegerField(default=0, help_text="Granted (less than the campaign's near the cap).")
    welcome_amount = models.BigIntegerField(default=0, help_text="The welcome red packet's amount, fen.")
    welcome_packet = models.OneToOneField(
        "payments.RedPacket", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The welcome bonus: a one-part red packet the platform sent the referee (marketing budget).")
    welcome_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="+", help_text="Marketing budget → the packet's escrow.")
    welcome_refunded = models.BigIntegerField(
        default=0, help_text="The packet was never opened (expired, or withdrawn on clawback): back to the budget.")
    clawback_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")
    recovered_amount = models.BigIntegerField(default=0, help_text="Welcome bonus taken back on clawback.")
    owed_amount = models.BigIntegerField(default=0, help_text="Welcome bonus already spent: owed by the referee.")
    created_at = models.DateTimeField(default=clock.now)
    clawed_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["referrer", "status", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(welcome_amount__gte=0) & Q(recovered_amount__gte=0)
                                   & Q(owed_amount__gte=0)
                                   & Q(welcome_refunded__gte=0)
                                   & Q(recovered_amount__lte=F("welcome_amount") - F("owed_amount")
                                       - F("welcome_refunded")),
                                   name="referrals_reward_clawback_within_bonus"),
        ]

    def __str__(self) -> str:
        return f"reward #{self.pk} ({self.status})"


class RateBoost(models.Model):
    """Extra yield for a lender on a scope, in basis points, from `starts_at` until `ends_at` or revocation."""

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=60)
    bp = models.PositiveIntegerField()
    cap_bp = models.PositiveIntegerField(help_text="The campaign cap this boost was granted under.")
    reward = models.OneToOneField(Reward, null=True, blank=True, on_delete=models.PROTECT, related_name="boost")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "scope", "ends_at"])]

    def __str__(self) -> str:
        return f"+{self.bp} bp on {self.scope} for user {self.user_id}"


class DoublingCard(models.Model):
    """理财通-style yield-doubling card: the holder picks one day on which their lending interest is doubled;
    the extra is paid from the marketing budget when loans reports that day's interest."""

    class Status(models.TextChoices):
        UNUSED = "unused"  # no day chosen yet
        SCHEDULED = "scheduled"  # a day is chosen
        PAID = "paid"  # the extra interest was paid
        REVOKED = "revoked"  # clawed back with its reward

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    scope = models.CharField(max_length=60)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")
    reward = models.ForeignKey(Reward, null=True, blank=True, on_delete=models.PROTECT, related_name="cards")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNUSED)
    day = models.DateField(null=True, blank=True)
    expires_at = models.DateTimeField()
    paid_amount = models.BigIntegerField(default=0)
    paid_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    paid_reference = models.CharField(max_length=100, blank=True, help_text="Loans' reference for the payout.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["user", "scope", "day"], condition=Q(day__isnull=False)
                                               & ~Q(status="revoked"), name="referrals_one_card_per_day")]

    def __str__(self) -> str:
        return f"doubling card #{self.pk} ({self.status})"


class AbuseFlag(models.Model):
    """Something for operations to review (velocity, a burst of rejections). Flags never block by themselves."""

    class Kind(models.TextChoices):
        SIGNUP_VELOCITY = "signup_velocity"
        DAILY_CAP = "daily_cap"
        SELF_REFERRAL = "self_referral"

    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    detail = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=clock.now)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolution = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} flag on user {self.user_id}"

