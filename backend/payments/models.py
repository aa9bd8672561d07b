"""Money in chat: red packets, friend transfers, AA bills and settle-ups. The money itself is in the wallet's
ledger (entries and holds referenced here); these rows are the business state their chat cards show.

Amounts are integer fen. Each object keeps ``card_version``, the version of its chat card it last wrote
(chat.services.update_card checks it), and ``message``, the card itself.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from backend.core import clock

USER = settings.AUTH_USER_MODEL


class RedPacket(models.Model):
    """红包: the total leaves the sender's wallet for the payments escrow when sent; each grab moves one
    pre-drawn part from escrow to the grabber; after expiry the rest goes back to the sender, once."""

    class Kind(models.TextChoices):
        FIXED = "fixed"  # equal parts (within one fen)
        LUCKY = "lucky"  # random parts, drawn at send time from `seed`

    class Status(models.TextChoices):
        OPEN = "open"
        EMPTY = "empty"  # every part grabbed
        EXPIRED = "expired"  # the rest refunded (at expiry, or a platform packet withdrawn early)

    class Funding(models.TextChoices):
        SENDER = "sender"  # paid from the sender's wallet; the rest goes back there
        MARKETING = "marketing"  # a platform packet (e.g. a welcome bonus): the marketing budget, and back

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.PROTECT, related_name="+")
    sender = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    funding = models.CharField(max_length=10, choices=Funding.choices, default=Funding.SENDER)
    total = models.BigIntegerField()
    count = models.PositiveIntegerField()
    greeting = models.CharField(max_length=40, blank=True)
    parts = models.JSONField(help_text="The split, fixed at send time: part i goes to the i-th grab.")
    seed = models.CharField(max_length=64, help_text="Hex; secret until the packet closes, then published.")
    seed_hash = models.CharField(max_length=64, help_text="sha256(seed bytes), published at once on the card.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    grabbed_count = models.PositiveIntegerField(default=0)
    grabbed_amount = models.BigIntegerField(default=0)
    refunded_amount = models.BigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=64)
    send_entry = models.ForeignKey("wallet.JournalEntry", null=True, on_delete=models.PROTECT, related_name="+")
    refund_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    card_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "expires_at"])]
        constraints = [
            models.UniqueConstraint(fields=["sender", "idempotency_key"], name="payments_packet_idempotent"),
            models.CheckConstraint(condition=Q(count__gte=1) & Q(total__gte=F("count")),
                                   name="payments_packet_one_fen_per_part"),
            models.CheckConstraint(condition=Q(grabbed_count__lte=F("count")), name="payments_packet_grabs_le_count"),
            models.CheckConstraint(
                condition=Q(grabbed_amount__gte=0) & Q(refunded_amount__gte=0)
                & Q(total__gte=F("grabbed_amount") + F("refunded_amount")),
                name="payments_packet_no_overspend",
            ),
        ]

    def __str__(self) -> str:
        return f"red packet #{self.pk} {self.total} fen × {self.count} ({self.status})"


class RedPacketGrab(models.Model):
    packet = models.ForeignKey(RedPacket, on_delete=models.PROTECT, related_name="grabs")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    index = models.PositiveIntegerField(help_text="Which part (grabs are served in commit order).")
    amount = models.BigIntegerField()
    entry = models.ForeignKey("wallet.JournalEntry", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["packet", "index"]
        constraints = [
            models.UniqueConstraint(fields=["packet", "user"], name="payments_grab_once_per_member"),
            models.UniqueConstraint(fields=["packet", "index"], name="payments_grab_each_part_once"),
            models.CheckConstraint(condition=Q(amount__gte=1), name="payments_grab_at_least_one_fen"),
        ]

    def __str__(self) -> str:
        return f"grab {self.packet_id}#{self.index} {self.amount} fen"


class FriendTransfer(models.Model):
    """好友转账: a hold from sender to recipient; accepted (posted), declined or expired (voided), once."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        REFUNDED = "refunded"  # not accepted in time

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.PROTECT, related_name="+")
    sender = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    note = models.CharField(max_length=140, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    hold = models.OneToOneField("wallet.Hold", null=True, on_delete=models.PROTECT, related_name="+")
    entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    idempotency_key = models.CharField(max_length=64)
    message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    card_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "expires_at"]), models.Index(fields=["sender", "created_at"])]
        constraints = [
            models.UniqueConstraint(fields=["sender", "idempotency_key"], name="payments_transfer_idempotent"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_transfer_amount_positive"),
            models.CheckConstraint(condition=~Q(sender=F("recipient")), name="payments_transfer_not_to_self"),
        ]

    def __str__(self) -> str:
        return f"transfer #{self.pk} {self.amount} fen ({self.status})"


class Bill(models.Model):
    """AA收款: a member bills chosen members of a group or circle conversation for a total."""

    class Method(models.TextChoices):
        EQUAL = "equal"
        EXACT = "exact"
        PERCENT = "percent"  # basis points: 2500 = 25.00 %
        SHARES = "shares"

    class Status(models.TextChoices):
        OPEN = "open"
        COMPLETED = "completed"  # every share paid (or declined)
        CLOSED = "closed"  # closed early by the creator; paid shares kept
        CANCELLED = "cancelled"

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.PROTECT, related_name="+")
    creator = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=40)
    total = models.BigIntegerField()
    method = models.CharField(max_length=10, choices=Method.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    refunded_on_cancel = models.BooleanField(null=True, blank=True,
                                             help_text="On cancel: were paid shares refunded (or kept)?")
    idempotency_key = models.CharField(max_length=64)
    message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    card_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["conversation", "status"])]
        constraints = [
            models.UniqueConstraint(fields=["creator", "idempotency_key"], name="payments_bill_idempotent"),
            models.CheckConstraint(condition=Q(total__gt=0), name="payments_bill_total_positive"),
        ]

    def __str__(self) -> str:
        return f"bill #{self.pk} {self.title} {self.total} fen ({self.status})"


class Share(models.Model):
    class Status(models.TextChoices):
        OWN = "own"  # the creator's own part of the total: nothing to pay
        PENDING = "pending"
        PAID = "paid"  # from the participant's wallet (directly or through a settle-up)
        PAID_OFFLINE = "paid_offline"  # marked by the creator
        DECLINED = "declined"
        REFUNDED = "refunded"  # paid, then refunded when the bill was cancelled
        VOID = "void"  # still unpaid when the bill was closed or cancelled

    bill = models.ForeignKey(Bill, on_delete=models.PROTECT, related_name="shares")
    participant = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    refund_entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    settlement = models.ForeignKey("Settlement", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="shares", help_text="The settle-up that covers this share.")
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["bill", "participant"]
        constraints = [
            models.UniqueConstraint(fields=["bill", "participant"], name="payments_share_once_per_participant"),
            models.CheckConstraint(condition=Q(amount__gte=1), name="payments_share_at_least_one_fen"),
        ]

    def __str__(self) -> str:
        return f"share {self.bill_id}/{self.participant_id} {self.amount} fen ({self.status})"


class Settlement(models.Model):
    """Settle up: the fewest transfers that clear what members owe each other across a conversation's open
    bills. Its shares are frozen to it while it is open; each debtor pays their transfers in one tap."""

    class Status(models.TextChoices):
        OPEN = "open"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    conversation = models.ForeignKey("chat.Conversation", on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    card_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["conversation"], condition=Q(status="open"),
                                    name="payments_one_open_settlement_per_conversation"),
        ]

    def __str__(self) -> str:
        return f"settle-up #{self.pk} ({self.status})"


class SettlementTransfer(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"

    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="transfers")
    debtor = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    creditor = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    entry = models.ForeignKey("wallet.JournalEntry", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payments_settle_amount_positive"),
            models.CheckConstraint(condition=~Q(debtor=F("creditor")), name="payments_settle_not_to_self"),
        ]

    def __str__(self) -> str:
        return f"settle {self.debtor_id}→{self.creditor_id} {self.amount} fen ({self.status})"
