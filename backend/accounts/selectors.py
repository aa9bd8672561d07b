"""Reads of the accounts app, scoped to the caller."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Device, User


def visible_users() -> QuerySet[User]:
    """Users whose public profile (name, avatar) anyone signed in may fetch by id. Ids are unguessable
    (accounts.ids), so holding one means it was shown to you."""
    return User.objects.filter(is_active=True)


def active_devices_of(user: User) -> QuerySet[Device]:
    return Device.objects.filter(user=user, revoked_at__isnull=True).order_by("-last_seen_at", "-id")


def push_targets_of(user_id: int) -> QuerySet[Device]:
    """Devices that can receive a push: signed in, push enabled, with a token or installation id."""
    return Device.objects.filter(user_id=user_id, revoked_at__isnull=True, push_enabled=True).exclude(
        fcm_token="", installation_id=""
    )
