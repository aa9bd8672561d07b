"""Wallets are opened when a user is created, so reading `myWallet` never writes (accounts does not know the
wallet app: wallet listens to user creation, registered in WalletConfig.ready)."""

from __future__ import annotations

from django.db.models.signals import post_save

from backend.accounts.models import User

from .services import ensure_wallet


def open_wallet_for_new_user(sender, instance: User, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        ensure_wallet(user_id=instance.pk)


def connect() -> None:
    post_save.connect(open_wallet_for_new_user, sender=User, dispatch_uid="wallet.open_wallet_for_new_user")
