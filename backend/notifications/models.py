"""Notification rows: the in-app inbox and the push outbox in one table.

A row is written in the caller's transaction (so it exists exactly when the change it reports does) and
carries its own push state, so a sweep can finish delivery after any crash.
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
        SYSTEM = "system"

    class PushState(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        SKIPPED = "skipped"
        FAILED = "failed"  # will be retried at push_next_attempt_at
        DEAD = "dead"  # gave up

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
    pushed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["recipient", "-id"]),
            models.Index(fields=["recipient", "read_at"]),
            models.Index(fields=["push_state", "push_next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} → user {self.recipient_id}"
