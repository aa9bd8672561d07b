"""Users, their devices, one-time codes and refresh tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models

from backend.core import clock
from backend.core.crypto import EncryptedTextField, keyring
from backend.core.phone import mask_phone, normalize_phone

PHONE_INDEX_CONTEXT = "accounts.user.phone"
ID_NUMBER_INDEX_CONTEXT = "accounts.user.id_number"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def phone_index(phone: str) -> str:
    return keyring().blind_index(normalize_phone(phone), context=PHONE_INDEX_CONTEXT)


def normalize_id_number(value: object) -> str | None:
    """A mainland resident ID number (居民身份证号码, GB 11643: 17 digits and an ISO 7064 MOD 11-2 check
    character) in canonical form (upper-case X, no spaces), or None when it is not one."""
    if not isinstance(value, str):
        return None
    number = value.strip().replace(" ", "").upper()
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return None
    expected = _ID_CHECK[sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True)) % 11]
    return number if number[17] == expected else None


def id_number_index(id_number: str) -> str:
    """The keyed blind index of a (normalized) ID number: equal numbers give equal indexes, and without the
    key nobody can go back from an index to the number or test guesses against it."""
    return keyring().blind_index(id_number, context=ID_NUMBER_INDEX_CONTEXT)


class UserManager(BaseUserManager):
    def create_user(self, phone: str, password: str | None = None, **fields) -> User:
        phone = normalize_phone(phone)
        user = self.model(phone=phone, phone_index=phone_index(phone), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, phone_index: str, password: str | None = None, **fields) -> User:
        # createsuperuser prompts for USERNAME_FIELD; operators type the phone number there.
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        fields.setdefault("display_name", "Operations")
        return self.create_user(phone_index, password, **fields)

    def get_by_phone(self, phone: str) -> User:
        return self.get(phone_index=phone_index(phone))

    def get_by_natural_key(self, username: str) -> User:
        # Admin login passes the typed phone number; look it up by its blind index.
        try:
            return self.get(phone_index=phone_index(username))
        except Exception:
            return self.get(phone_index=username)


class User(AbstractBaseUser, PermissionsMixin):
    class KycLevel(models.IntegerChoices):
        NONE = 0, "none"
        BASIC = 1, "basic (phone verified)"
        VERIFIED = 2, "verified (ID checked)"
        FULL = 3, "full (bank card bound)"

    class Role(models.TextChoices):
        CUSTOMER = "customer", "customer"
        CLIENT_MANAGER = "client_manager", "client manager"
        SERVICE_ACCOUNT = "service_account", "service account"

    # Bank-side identities: they carry the verified badge, and customers may not take names that mimic them.
    VERIFIED_ROLES = (Role.CLIENT_MANAGER, Role.SERVICE_ACCOUNT)

    phone = EncryptedTextField(context=PHONE_INDEX_CONTEXT)
    phone_index = models.CharField(max_length=64, unique=True, editable=False)
    display_name = models.CharField(max_length=64)
    avatar_url = models.URLField(max_length=500, blank=True)
    kyc_level = models.PositiveSmallIntegerField(choices=KycLevel.choices, default=KycLevel.NONE)
    id_number_index = models.CharField(
        max_length=64, blank=True, db_index=True, editable=False,
        help_text="Keyed blind index of the verified ID number (the number itself is never stored). Not unique: "
                  "one person may hold several phone numbers, which is what the referral rules look for.")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CUSTOMER)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May use the Django admin (operations staff).")
    date_joined = models.DateTimeField(default=clock.now)

    objects = UserManager()

    USERNAME_FIELD = "phone_index"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.display_name} ({mask_phone(self.phone or '')})"

    @property
    def is_client_manager(self) -> bool:
        return self.role == self.Role.CLIENT_MANAGER

    @property
    def is_verified(self) -> bool:
        """The bank's badge: staff, client managers and service accounts. No customer can obtain it."""
        return self.is_staff or self.role in self.VERIFIED_ROLES


class Device(models.Model):
    """One signed-in app installation: it owns a refresh-token chain and is where pushes go."""

    class Platform(models.TextChoices):
        ANDROID = "android"
        IOS = "ios"
        WEB = "web"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="devices")
    name = models.CharField(max_length=100, blank=True)
    platform = models.CharField(max_length=10, choices=Platform.choices, default=Platform.ANDROID)
    fcm_token = models.CharField(max_length=4096, blank=True)
    installation_id = models.CharField(max_length=200, blank=True)
    push_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    last_seen_at = models.DateTimeField(default=clock.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=40, blank=True)
    # Each sign-in on this row starts a new session generation; access tokens name theirs and only the
    # current one is honoured, so signing in again never revives tokens issued before a sign-out.
    generation = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "revoked_at"])]

    def __str__(self) -> str:
        return f"{self.platform} {self.name or self.pk} of user {self.user_id}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class OtpChallenge(models.Model):
    """A one-time code sent by SMS. Only its keyed hash is stored."""

    phone_index = models.CharField(max_length=64, db_index=True)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    requested_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"otp #{self.pk}"


class RefreshToken(models.Model):
    """Opaque refresh token, stored as SHA-256. Rotated on every use; reusing a rotated one burns the chain."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"refresh token #{self.pk} of device {self.device_id}"
