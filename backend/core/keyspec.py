"""Key specifications from the environment. Pure (no Django): settings.py uses it before Django is set up."""

from __future__ import annotations

import base64
import hashlib
import hmac


def parse_keys(spec: str) -> tuple[dict[str, bytes], str]:
    """Parse ``QUANZI_KEYS``: ``id=base64key,id=base64key``; the first one encrypts new data."""
    keys: dict[str, bytes] = {}
    primary = ""
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key_id, sep, b64 = part.partition("=")
        if not sep or not key_id.isalnum():
            raise ValueError("QUANZI_KEYS entries look like id=base64key")
        key = base64.b64decode(b64 + "=" * (-len(b64) % 4))
        if len(key) != 32:
            raise ValueError(f"key {key_id!r} must be 32 bytes (AES-256)")
        keys[key_id] = key
        primary = primary or key_id
    if not keys:
        raise ValueError("QUANZI_KEYS holds no key")
    return keys, primary


def channel_layer_keys(*, dedicated: str, data_keys: str) -> list[str]:
    """Keys for channels-redis `symmetric_encryption_keys` (the first encrypts, every one decrypts, so keys
    rotate like QUANZI_KEYS): the comma-separated secrets of CHANNEL_LAYER_KEYS when set, else one derived
    from each QUANZI_KEYS key by HMAC, so a data key never encrypts anything but data."""
    given = [k.strip() for k in dedicated.split(",") if k.strip()]
    if given:
        return given
    keys, _primary = parse_keys(data_keys)  # in order: the primary first
    return [hmac.new(key, b"quanzi channel layer v1", hashlib.sha256).hexdigest() for key in keys.values()]
