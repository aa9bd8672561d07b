"""Notification rows: the in-app inbox and the push outbox in one table; preferences; per-device deliveries.

A row is written in the caller's transaction (so it exists exactly when the change it reports does) and
carries its own push state, so a sweep can finish delivery after any crash.

Push states of a row:

    pending ──claim──▶ sending ──▶ sent            (at least one device got it)
       ▲                  │    ├──▶ skipped         (reason: online, read, muted_kind, muted_conversation,
       │                  │    │                     collapsed, no_devices, inactive_user)
       └──── deferred ────┘    ├──▶ failed          with push_next_attempt_at: retried (quota, 5xx, network)
      (quiet hours, collapse   │                     without it: failed for good with a reason
       window, lease expiry)   └──▶ dead            retries exhausted
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.core import clock
from backend.core.crypto import EncryptedTextField


class Notification(models.Model):
    class Kind(models.TextChoices):
        MESSAGE = "message"
        MONEY = "money"
        LOAN = "loan"
        CIRCLE = "circle"
        MARKETING = "marketing"
        SYSTEM = "system"  # security notices (new login, password change): never muted, ignores quiet hours

    class PushState(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"  # claimed by one worker; nobody else may send it until the lease expires
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"  # retried at push_next_attempt_at; without one, failed for good (see push_reason)
        DEAD = "dead"  # gave up after PUSH["MAX_ATTEMPTS"]

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    event = models.CharField(max_length=60, help_text="What happened, e.g. wallet.balance_changed.")
    title = models.CharField(max_length=120)
    body = EncryptedTextField(blank=True, help_text="Shown in the app; in a push only if the user allows previews.")
    payload = models.JSONField(default=dict, blank=True, help_text="Ids the client needs; never secrets.")
    conversation_id = models.BigIntegerField(null=True, blank=True, help_text="For per-conversation mute.")
    collapse_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    read_at = models.DateTimeField(null=True, blank=True)

    push_state = models.CharField(max_length=10, choices=PushState.choices, default=PushState.PENDING)
    push_reason = models.CharField(max_length=200, blank=True)
    push_attempts = models.PositiveSmallIntegerField(default=0)
    push_next_attempt_at = models.DateTimeField(null=True, blank=True)
    push_claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker claimed it (lease).")
    pushed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["recipient", "-id"]),
            models.Index(fields=["recipient", "read_at"]),
            models.Index(fields=["push_state", "push_next_attempt_at"]),
            models.Index(fields=["recipient", "collapse_key", "push_state"], name="notif_collapse_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → user {self.recipient_id}"


# Notification.Kind → the preference that switches its pushes. `system` has none: it cannot be muted.
KIND_PREFERENCE_FIELDS = {"message": "messages", "money": "money", "loan": "loans", "circle": "circles",
                          "marketing": "marketing"}


class NotificationPreferences(models.Model):
    """What a user wants pushed. No row means the defaults (everything but marketing, no previews)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    messages = models.BooleanField(default=True)
    money = models.BooleanField(default=True)
    loans = models.BooleanField(default=True)
    circles = models.BooleanField(default=True)
    marketing = models.BooleanField(default=False, help_text="Opt-in only.")
    show_previews = models.BooleanField(
        default=False, help_text="Put message text and amounts in pushes. Off: a generic title and ids only."
    )
    quiet_start = models.TimeField(null=True, blank=True, help_text="Local time quiet hours begin.")
    quiet_end = models.TimeField(null=True, blank=True, help_text="Local time quiet hours end.")
    timezone = models.CharField(max_length=64, default="Asia/Shanghai")
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name_plural = "notification preferences"

    def __str__(self) -> str:
        return f"preferences of user {self.user_id}"

    def allows(self, kind: str) -> bool:
        field = KIND_PREFERENCE_FIELDS.get(kind)
        return True if field is None else bool(getattr(self, field))


class ConversationMute(models.Model):
    """A user muted a conversation. Keyed by chat's integer id: notifications never imports chat."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversation_mutes")
    conversation_id = models.BigIntegerField()
    muted_until = models.DateTimeField(null=True, blank=True, help_text="Empty: until unmuted.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "conversation_id"], name="one_mute_per_user_conversation")
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} muted conversation {self.conversation_id}"


class PushDelivery(models.Model):
    """What happened to one notification on one device. A retry only goes to devices not yet delivered."""

    class State(models.TextChoices):
        DELIVERED = "delivered"
        RETRY = "retry"  # quota, 5xx or network: tried again with the row
        DEACTIVATED = "deactivated"  # token unregistered / invalid / other sender: device push switched off
        FAILED = "failed"  # any other error: not retried for this device

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
    device = models.ForeignKey("accounts.Device", on_delete=models.CASCADE, related_name="push_deliveries")
    target = models.CharField(max_length=5, help_text="token or fid: what FCM was addressed by.")
    state = models.CharField(max_length=12, choices=State.choices)
    error = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name_plural = "push deliveries"
        constraints = [
            models.UniqueConstraint(fields=["notification", "device"], name="one_delivery_per_notification_device")
        ]

    def __str__(self) -> str:
        return f"notification {self.notification_id} → device {self.device_id}: {self.state}"
