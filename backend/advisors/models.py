"""Client managers, who they look after, their tools, service accounts and broadcasts.

A client manager is a `accounts.User` with role client_manager and a `ManagerProfile` (branch, capacity,
office hours). Each customer has at most one active `Assignment` (a database constraint); ended assignments
stay as history. The customer's advisor conversation (chat) is one per customer and survives reassignment.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.core import clock
from backend.core.crypto import EncryptedTextField


def default_office_days() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday to Friday (date.weekday())


class ManagerProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="manager_profile")
    branch = models.CharField(max_length=64, db_index=True)
    capacity = models.PositiveIntegerField(default=200, help_text="Most customers assigned at once.")
    accepting = models.BooleanField(default=True, help_text="Takes new customers by branch / round-robin.")
    office_days = models.JSONField(default=default_office_days, help_text="Weekdays 0=Mon … 6=Sun.")
    office_opens = models.TimeField(default=dt.time(9, 0))
    office_closes = models.TimeField(default=dt.time(17, 30))
    timezone = models.CharField(max_length=40, default="Asia/Shanghai")
    away_message = models.CharField(max_length=500, blank=True,
                                    help_text="Auto-reply outside office hours; a default text when blank.")
    last_assigned_at = models.DateTimeField(null=True, blank=True, help_text="Round-robin order.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"manager {self.user_id} ({self.branch})"


class CustomerRecord(models.Model):
    """What the bank keeps about a customer for the advisor relationship (the customer never sees tags/tier)."""

    class Tier(models.TextChoices):
        CORE = "core"
        IMPORTANT = "important"
        ORDINARY = "ordinary"

    customer = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                    related_name="advisor_record")
    branch = models.CharField(max_length=64, blank=True, db_index=True)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.ORDINARY, db_index=True)
    tier_inputs = models.JSONField(default=dict, blank=True, help_text="The rule inputs of the last computation.")
    tier_computed_at = models.DateTimeField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    conversation = models.ForeignKey("chat.Conversation", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+", help_text="The customer's advisor conversation.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"customer {self.customer_id} ({self.tier})"


class Assignment(models.Model):
    class Method(models.TextChoices):
        ADMIN = "admin"
        BRANCH = "branch"
        ROUND_ROBIN = "round_robin"
        CUSTOMER_REQUEST = "customer_request"

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    manager = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    method = models.CharField(max_length=20, choices=Method.choices)
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(default=clock.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["customer"], condition=Q(ended_at__isnull=True),
                                    name="advisors_one_active_manager"),
        ]
        indexes = [models.Index(fields=["manager", "ended_at"])]

    def __str__(self) -> str:
        return f"customer {self.customer_id} → manager {self.manager_id}"


class CustomerNote(models.Model):
    """A manager's internal note on a customer. No customer-facing API reads this table."""

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = EncryptedTextField(context="advisors.note.body")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"note #{self.pk} on customer {self.customer_id}"


class QuickReply(models.Model):
    manager = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=64)
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["title", "id"]
        verbose_name_plural = "quick replies"

    def __str__(self) -> str:
        return self.title


class Product(models.Model):
    """The product catalog managers share as cards."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit"
        WEALTH = "wealth"
        FUND = "fund"
        INSURANCE = "insurance"
        LOAN = "loan"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    risk_level = models.PositiveSmallIntegerField(help_text="R1 (lowest) to R5.")
    expected_yield_bps = models.PositiveIntegerField(help_text="Expected annual yield in basis points.")
    min_amount = models.BigIntegerField(help_text="Minimum purchase, in fen.")
    detail_url = models.URLField(max_length=500)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(risk_level__gte=1, risk_level__lte=5),
                                              name="advisors_product_risk_r1_r5")]

    def __str__(self) -> str:
        return self.name


class ProductShare(models.Model):
    """A product card shared onward by a customer: the record a referral program tracks clicks against."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="shares")
    sharer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation_id = models.BigIntegerField()
    message_id = models.BigIntegerField()
    referral_code = models.CharField(max_length=16, blank=True,
                                     help_text="The sharer's referral code the card carried (core.share_hooks).")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"share of product {self.product_id} by {self.sharer_id}"


class ServiceAccount(models.Model):
    """A named sender (服务号). Its `user` (role service_account) is the verified sender in chat."""

    class Category(models.TextChoices):
        SECURITY = "security"  # login and balance alerts: nobody can unsubscribe
        SERVICE = "service"  # account notices (wallet, credit card, customer service)
        MARKETING = "marketing"  # offers: anyone may unsubscribe

    slug = models.SlugField(max_length=40, unique=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_account")
    category = models.CharField(max_length=20, choices=Category.choices)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug

    @property
    def may_unsubscribe(self) -> bool:
        return self.category == self.Category.MARKETING


class Subscription(models.Model):
    service_account = models.ForeignKey(ServiceAccount, on_delete=models.CASCADE, related_name="subscriptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey("chat.Conversation", on_delete=models.CASCADE, related_name="+")
    subscribed_at = models.DateTimeField(default=clock.now)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["service_account", "user"], name="advisors_one_subscription")]

    def __str__(self) -> str:
        return f"user {self.user_id} ← {self.service_account_id}"

    @property
    def active(self) -> bool:
        return self.unsubscribed_at is None


class Broadcast(models.Model):
    class Target(models.TextChoices):
        TIER = "tier"
        CIRCLE = "circle"
        LIST = "list"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    service_account = models.ForeignKey(ServiceAccount, on_delete=models.PROTECT, related_name="broadcasts")
    text = models.TextField(max_length=2000)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target = models.CharField(max_length=10, choices=Target.choices)
    target_tier = models.CharField(max_length=10, blank=True)
    target_conversation_id = models.BigIntegerField(null=True, blank=True, help_text="The circle's conversation.")
    target_user_ids = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    audience_count = models.PositiveIntegerField(default=0)
    delivered_count = models.PositiveIntegerField(default=0)
    capped_count = models.PositiveIntegerField(default=0, help_text="Skipped: the per-user frequency cap.")
    unsubscribed_count = models.PositiveIntegerField(default=0, help_text="Skipped: unsubscribed.")
    created_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"broadcast #{self.pk} via {self.service_account_id}"


class BroadcastDelivery(models.Model):
    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation_id = models.BigIntegerField()
    seq = models.BigIntegerField()
    delivered_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["broadcast", "user"], name="advisors_deliver_once")]
        indexes = [models.Index(fields=["user", "delivered_at"])]

    def __str__(self) -> str:
        return f"broadcast {self.broadcast_id} → user {self.user_id}"


class AutoReply(models.Model):
    """One automatic reply per advisor conversation per closed window (keyed by when the office next opens)."""

    conversation_id = models.BigIntegerField()
    window_opens_at = models.DateTimeField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["conversation_id", "window_opens_at"],
                                               name="advisors_one_auto_reply_per_window")]

    def __str__(self) -> str:
        return f"auto-reply in {self.conversation_id} for {self.window_opens_at}"
