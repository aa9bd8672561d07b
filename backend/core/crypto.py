"""Encryption at rest: AES-256-GCM under rotating key ids, and keyed hashes (blind indexes).

Stored form of a ciphertext: ``<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``. The key id says which key
to decrypt with, so old rows stay readable after a rotation until `rotate_encryption_keys` rewrites them.
The associated data binds a ciphertext to its column, so a value copied into another column fails to decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import models

from .keyspec import parse_keys

_TOKEN_MARKER = b"QZ-ID\x00\x00\x01"  # 8 bytes: a token that decrypts to anything else is not ours


class DecryptionError(Exception):
    pass


@dataclass(frozen=True)
class KeyRing:
    keys: dict[str, bytes]
    primary_id: str
    blind_index_key: bytes

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.primary_id]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{self.primary_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, *, context: str) -> str:
        key_id, _, blob = stored.partition(":")
        key = self.keys.get(key_id)
        if key is None or not blob:
            raise DecryptionError(f"unknown key id {key_id!r}")
        raw = base64.urlsafe_b64decode(blob.encode())
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not authenticate") from exc

    def key_id_of(self, stored: str) -> str:
        return stored.partition(":")[0]

    def blind_index(self, value: str, *, context: str) -> str:
        return hmac.new(self.blind_index_key, f"{context}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def _id_cipher(self, context: str) -> Cipher:
        key = hmac.new(self.blind_index_key, f"public-id\x00{context}".encode(), hashlib.sha256).digest()
        return Cipher(algorithms.AES(key), modes.ECB())  # one block, one value: a keyed permutation

    def public_token(self, value: int, *, context: str) -> str:
        """An opaque, stable 32-hex token for a positive integer (e.g. a user pk): one AES block holding a
        fixed marker and the value, so tokens look random, are not sequential, and cannot be forged."""
        block = _TOKEN_MARKER + value.to_bytes(8, "big")
        encryptor = self._id_cipher(context).encryptor()
        return (encryptor.update(block) + encryptor.finalize()).hex()

    def open_public_token(self, token: str, *, context: str) -> int:
        """The integer behind `public_token`; ValueError for anything that is not one of ours."""
        if len(token) != 32 or token != token.lower():
            raise ValueError("not a public token")
        decryptor = self._id_cipher(context).decryptor()
        block = decryptor.update(bytes.fromhex(token)) + decryptor.finalize()
        value = int.from_bytes(block[8:], "big")
        if not hmac.compare_digest(block[:8], _TOKEN_MARKER) or value <= 0 or value >= 2**63:
            raise ValueError("not a public token")
        return value


_ring: KeyRing | None = None
_ring_source: tuple | None = None


def keyring() -> KeyRing:
    """The process-wide key ring, rebuilt when settings change (tests override them)."""
    global _ring, _ring_source
    source = (settings.QUANZI_KEYS, settings.QUANZI_BLIND_INDEX_KEY)
    if _ring is None or source != _ring_source:
        keys, primary = parse_keys(settings.QUANZI_KEYS)
        _ring = KeyRing(keys=keys, primary_id=primary, blind_index_key=settings.QUANZI_BLIND_INDEX_KEY.encode())
        _ring_source = source
    return _ring


class EncryptedTextField(models.TextField):
    """A text column that only ever holds ciphertext. Python sees plaintext."""

    def __init__(self, *args, context: str = "", **kwargs):
        self.context = context
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["context"] = self.context
        return name, path, args, kwargs

    def _context(self) -> str:
        return self.context or f"{self.model._meta.label_lower}.{self.name}"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return keyring().decrypt(value, context=self._context())

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return keyring().encrypt(value, context=self._context())


def encrypted_fields() -> list[tuple[type[models.Model], EncryptedTextField]]:
    from django.apps import apps

    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                found.append((model, field))
    return found
