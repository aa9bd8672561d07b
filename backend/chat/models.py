"""Conversations, memberships, messages and their edit history.

The database is the truth. Every message gets a per-conversation `seq` from `Conversation.last_seq`,
incremented under a row lock in the transaction that inserts it, so seqs are gapless and clients can detect
any message they missed. Bodies (text, attachment metadata, card payloads, system details) are ciphertext.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from backend.core import clock
from backend.core.crypto import EncryptedTextField


class Conversation(models.Model):
    class Kind(models.TextChoices):
        DIRECT = "direct"  # 1:1, once per pair
        GROUP = "group"  # owner, admins, members
        CIRCLE = "circle"  # membership managed by the circles app
        ADVISOR = "advisor"  # a customer and their client manager
        SERVICE = "service"  # one-way notices from a service account to a subscriber

    kind = models.CharField(max_length=10, choices=Kind.choices)
    title = models.CharField(max_length=64, blank=True)
    # Natural key for conversations that must exist once: "direct:<lo>:<hi>", "circle:<id>", ...
    key = models.CharField(max_length=100, unique=True, null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_seq = models.BigIntegerField(default=0, help_text="Seq of the newest message; 0 when empty.")
    last_change = models.BigIntegerField(default=0, help_text="Counter bumped by every edit and recall.")
    last_message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    last_activity_at = models.DateTimeField(default=clock.now)
    member_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        # the missed-message push scan reads only recently active conversations
        indexes = [models.Index(fields=["last_activity_at"], name="chat_conv_activity_idx")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} {self.title}".strip()


class Membership(models.Model):
    """A user's seat in a conversation. Leaving or removal keeps the row (left_at) for history."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # Mutes are not stored here: notifications.ConversationMute is the one record (read through
    # notifications.selectors.conversation_muted_flag).
    last_read_seq = models.BigIntegerField(default=0)
    visible_from_seq = models.BigIntegerField(
        default=1, help_text="Members see messages from this seq on (messages before they joined stay hidden)."
    )
    joined_at = models.DateTimeField(default=clock.now)
    left_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    missed_push_seq = models.BigIntegerField(
        default=0, help_text="Messages up to this seq were settled by the missed-message push sweep."
    )

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["conversation", "user"], name="chat_one_seat_per_user")]
        indexes = [models.Index(fields=["user", "left_at"]), models.Index(fields=["conversation", "left_at"])]

    def __str__(self) -> str:
        return f"user {self.user_id} in conversation {self.conversation_id} ({self.role})"

    @property
    def is_active(self) -> bool:
        return self.left_at is None


class Message(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text"
        IMAGE = "image"
        FILE = "file"
        CARD = "card"
        SYSTEM = "system"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    seq = models.BigIntegerField()
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    client_msg_id = models.CharField(max_length=64, null=True, blank=True)
    body = EncryptedTextField(blank=True, context="chat.message.body")
    # JSON, encrypted: attachment metadata, card payload or system-event details.
    data = EncryptedTextField(blank=True, context="chat.message.data")
    card_kind = models.CharField(max_length=40, blank=True, help_text="For cards: transfer, aa_bill, red_packet, ...")
    reply_to_seq = models.BigIntegerField(null=True, blank=True, help_text="Seq of the quoted message, same conversation.")
    mentions = models.JSONField(default=list, blank=True, help_text="User ids mentioned.")
    created_at = models.DateTimeField(default=clock.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    recalled_at = models.DateTimeField(null=True, blank=True)
    change_no = models.BigIntegerField(null=True, blank=True, help_text="Conversation.last_change at the last edit/recall.")
    card_version = models.PositiveIntegerField(
        default=0, help_text="For cards: bumped by every state change its owner app makes (update_card)."
    )

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="chat_gapless_seq"),
            models.UniqueConstraint(fields=["sender", "client_msg_id"], name="chat_idempotent_send"),
            # Sender-less server cards (post_server_card) are idempotent on their key per conversation.
            models.UniqueConstraint(fields=["conversation", "client_msg_id"], name="chat_idempotent_server_card",
                                    condition=models.Q(sender__isnull=True, client_msg_id__isnull=False)),
        ]
        indexes = [models.Index(fields=["conversation", "change_no"])]

    def __str__(self) -> str:
        return f"message {self.conversation_id}#{self.seq} ({self.kind})"

    @property
    def is_recalled(self) -> bool:
        return self.recalled_at is not None


class MessageRevision(models.Model):
    """The body a message had before an edit (kept for compliance; erased on recall)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="revisions")
    body = EncryptedTextField(context="chat.revision.body")
    replaced_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"revision of message {self.message_id}"
