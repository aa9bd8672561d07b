"""Friends, blocks, discovery settings, circles and their members, trust inputs, moments, events and the
defaulter blacklist. Tables and constraints only; the rules live in services."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from backend.core import clock

USER = settings.AUTH_USER_MODEL


# --- friends and discovery ------------------------------------------------------------------------


class Friendship(models.Model):
    """One row per direction (A→B and B→A), so "my friends" is one indexed filter."""

    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="friendships")
    friend = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["user", "friend"], name="circles_one_friendship")]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.friend_id}"


class FriendRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        CANCELLED = "cancelled"

    from_user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="friend_requests_sent")
    to_user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="friend_requests_received")
    note = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=clock.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["from_user", "to_user"], condition=Q(status="pending"),
                                               name="circles_one_pending_request")]

    def __str__(self) -> str:
        return f"friend request {self.from_user_id} → {self.to_user_id} ({self.status})"


class Block(models.Model):
    blocker = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="blocks")
    blocked = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["blocker", "blocked"], name="circles_one_block")]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"


class Discoverability(models.Model):
    """A user's consent to be found. Off by default: nobody finds you by phone until you allow it."""

    user = models.OneToOneField(USER, on_delete=models.CASCADE, primary_key=True, related_name="discoverability")
    by_phone = models.BooleanField(default=False)
    share_code = models.CharField(max_length=16, unique=True, help_text="Personal QR / share code.")
    updated_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"discoverability of {self.user_id}"


# --- circles -----------------------------------------------------------------------------------------


class Circle(models.Model):
    class Kind(models.TextChoices):
        FRIENDS = "friends"
        ALUMNI = "alumni"  # classmates / alumni
        COMMUNITY = "community"  # neighbours
        INTEREST = "interest"

    class Visibility(models.TextChoices):
        PUBLIC = "public"  # anyone may find it
        INVITE_ONLY = "invite_only"  # visible to whoever holds a code or an invitation
        HIDDEN = "hidden"  # does not exist for non-members

    class JoinPolicy(models.TextChoices):
        OPEN = "open"
        APPROVAL = "approval"
        INVITE_CODE = "invite_code"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=64)
    description = models.TextField(blank=True, max_length=2000)
    avatar_url = models.URLField(max_length=500, blank=True)
    visibility = models.CharField(max_length=12, choices=Visibility.choices, default=Visibility.PUBLIC)
    join_policy = models.CharField(max_length=12, choices=JoinPolicy.choices, default=JoinPolicy.OPEN)
    requires_verification = models.BooleanField(default=False, help_text="Alumni: members must be verified.")
    verification_domain = models.CharField(max_length=100, blank=True, help_text="School e-mail domain, e.g. tsinghua.edu.cn")
    members_may_message = models.BooleanField(default=True, help_text="Co-members may open direct chats.")
    owner = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    conversation = models.OneToOneField("chat.Conversation", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    member_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class CircleMember(models.Model):
    """A user's seat in a circle. One row per (circle, user): leaving keeps it (left_at) for history."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="circle_seats")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=clock.now)
    left_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    muted_until = models.DateTimeField(null=True, blank=True, help_text="Muted by an admin: no posts until then.")
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    verification_method = models.CharField(max_length=12, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["circle", "user"], name="circles_one_seat")]
        indexes = [models.Index(fields=["user", "left_at"]), models.Index(fields=["circle", "left_at"])]

    def __str__(self) -> str:
        return f"user {self.user_id} in circle {self.circle_id} ({self.role})"

    @property
    def is_active(self) -> bool:
        return self.left_at is None


class InviteCode(models.Model):
    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="invite_codes")
    code = models.CharField(max_length=16, unique=True)
    created_by = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    max_uses = models.PositiveIntegerField()
    uses = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"invite {self.code} to circle {self.circle_id}"


class JoinRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="join_requests")
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    note = models.CharField(max_length=200, blank=True)
    invited_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
                                   help_text="Set for an invitation the user accepts; empty for a request admins decide.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=clock.now)
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["circle", "user"], condition=Q(status="pending"),
                                               name="circles_one_pending_join")]

    def __str__(self) -> str:
        return f"join request of {self.user_id} to circle {self.circle_id} ({self.status})"


class VerificationRequest(models.Model):
    """Alumni verification: a school e-mail confirmed by a code, or uploaded proof an admin approves."""

    class Method(models.TextChoices):
        EMAIL = "email"
        PROOF = "proof"

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="verification_requests")
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=8, choices=Method.choices)
    email_index = models.CharField(max_length=64, blank=True, help_text="Blind index of the school e-mail.")
    code_hash = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    proof_url = models.URLField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=clock.now)
    decided_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} verification of {self.user_id} in circle {self.circle_id} ({self.status})"


class Vouch(models.Model):
    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="vouches")
    voucher = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    vouchee = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["circle", "voucher", "vouchee"], condition=Q(withdrawn_at__isnull=True),
                                    name="circles_one_active_vouch"),
            models.CheckConstraint(condition=~Q(voucher=models.F("vouchee")), name="circles_no_self_vouch"),
        ]

    def __str__(self) -> str:
        return f"{self.voucher_id} vouches for {self.vouchee_id} in {self.circle_id}"


class LoanOutcome(models.Model):
    """Reported by loans: how one loan of a member ended, counted in each circle the loan ran in."""

    class Outcome(models.TextChoices):
        ON_TIME = "on_time"
        LATE = "late"
        DEFAULTED = "defaulted"

    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="+")
    loan_ref = models.CharField(max_length=64)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    recorded_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["user", "circle", "loan_ref"], name="circles_one_outcome")]

    def __str__(self) -> str:
        return f"loan {self.loan_ref} of {self.user_id}: {self.outcome}"


# --- the defaulter blacklist ---------------------------------------------------------------------------


class BlacklistEntry(models.Model):
    user = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    loan_ref = models.CharField(max_length=64)
    reason = models.CharField(max_length=200)
    evidence = models.TextField(blank=True)
    circles = models.ManyToManyField(Circle, related_name="+", blank=True, help_text="The circles told.")
    created_at = models.DateTimeField(default=clock.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    lift_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "blacklist entries"
        constraints = [models.UniqueConstraint(fields=["user", "loan_ref"], name="circles_one_entry_per_loan")]

    def __str__(self) -> str:
        return f"blacklist #{self.pk} user {self.user_id} ({'lifted' if self.lifted_at else 'active'})"


class BlacklistAudit(models.Model):
    """Every change to an entry: who, when, what, why. Append-only."""

    entry = models.ForeignKey(BlacklistEntry, on_delete=models.PROTECT, related_name="audit")
    action = models.CharField(max_length=20)
    actor = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.action} on blacklist #{self.entry_id}"


class AbuseReport(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        HANDLED = "handled"
        DISMISSED = "dismissed"

    reporter = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    target_user = models.ForeignKey(USER, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    circle = models.ForeignKey(Circle, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    post = models.ForeignKey("Post", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=clock.now)
    handled_by = models.ForeignKey(USER, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"report #{self.pk} ({self.status})"


# --- moments ---------------------------------------------------------------------------------------------


class Post(models.Model):
    class Audience(models.TextChoices):
        FRIENDS = "friends"
        CIRCLE = "circle"

    author = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    audience = models.CharField(max_length=8, choices=Audience.choices)
    circle = models.ForeignKey(Circle, null=True, blank=True, on_delete=models.CASCADE, related_name="posts")
    text = models.TextField(blank=True)
    images = models.JSONField(default=list, blank=True, help_text="https image URLs.")
    card = models.JSONField(null=True, blank=True, help_text="A product or loan-request card: {kind, ...ids}.")
    like_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["author", "audience", "id"]), models.Index(fields=["circle", "id"])]
        constraints = [models.CheckConstraint(
            condition=Q(audience="friends", circle__isnull=True) | Q(audience="circle", circle__isnull=False),
            name="circles_post_audience")]

    def __str__(self) -> str:
        return f"post #{self.pk} by {self.author_id}"


class PostLike(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["post", "user"], name="circles_one_like")]

    def __str__(self) -> str:
        return f"{self.user_id} likes post {self.post_id}"


class PostComment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=1000)
    created_at = models.DateTimeField(default=clock.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"comment #{self.pk} on post {self.post_id}"


# --- events ----------------------------------------------------------------------------------------------


class CircleEvent(models.Model):
    circle = models.ForeignKey(Circle, on_delete=models.CASCADE, related_name="events")
    created_by = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=64)
    description = models.TextField(blank=True, max_length=2000)
    place = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    capacity = models.PositiveIntegerField()
    reminded_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["starts_at", "id"]

    def __str__(self) -> str:
        return self.title


class Rsvp(models.Model):
    class Status(models.TextChoices):
        GOING = "going"
        WAITLISTED = "waitlisted"
        CANCELLED = "cancelled"

    event = models.ForeignKey(CircleEvent, on_delete=models.CASCADE, related_name="rsvps")
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices)
    attended = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["updated_at", "id"]
        constraints = [models.UniqueConstraint(fields=["event", "user"], name="circles_one_rsvp")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.status} for event {self.event_id}"
