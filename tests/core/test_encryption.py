"""Personal data is ciphertext in the database and survives a key rotation."""

import base64
import os

import pytest
from django.core.management import call_command
from django.db import connection

from backend.accounts.models import User
from backend.core.crypto import DecryptionError, keyring

pytestmark = pytest.mark.django_db


def raw_phone_column(user_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT phone FROM accounts_user WHERE id = %s", [user_id])
        return cursor.fetchone()[0]


def test_phone_numbers_are_stored_encrypted_and_found_by_blind_index():
    user = User.objects.create_user("+8613912345678", display_name="x")
    stored = raw_phone_column(user.pk)
    assert "13912345678" not in stored
    assert stored.startswith(f"{keyring().primary_id}:")
    assert User.objects.get_by_phone("139 1234 5678").pk == user.pk
    assert User.objects.get(pk=user.pk).phone == "+8613912345678"


def test_ciphertext_moved_to_another_column_does_not_decrypt():
    sealed = keyring().encrypt("secret", context="accounts.user.phone")
    with pytest.raises(DecryptionError):
        keyring().decrypt(sealed, context="chat.message.body")


def test_key_rotation_reencrypts_and_old_rows_stay_readable(settings):
    user = User.objects.create_user("+8613912345678", display_name="x")
    old_spec = settings.QUANZI_KEYS
    new_key = base64.b64encode(os.urandom(32)).decode()
    settings.QUANZI_KEYS = f"k2={new_key},{old_spec}"
    assert User.objects.get(pk=user.pk).phone == "+8613912345678"  # still under the old key id
    call_command("rotate_encryption_keys")
    assert raw_phone_column(user.pk).startswith("k2:")
    settings.QUANZI_KEYS = f"k2={new_key}"  # the old key can now be retired
    assert User.objects.get(pk=user.pk).phone == "+8613912345678"
    assert User.objects.get_by_phone("+8613912345678").pk == user.pk
