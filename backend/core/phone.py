"""Phone numbers: one normal form (E.164, mainland China default) so the blind index finds them."""

from __future__ import annotations

import re

from .errors import ValidationFailed

_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def normalize_phone(raw: object, *, field: str = "phone") -> str:
    if not isinstance(raw, str):
        raise ValidationFailed("Enter a phone number.", code="INVALID_PHONE", field=field)
    digits = re.sub(r"[\s\-()]", "", raw)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if _CN_MOBILE.match(digits):
        digits = "+86" + digits
    if not _E164.match(digits) or (digits.startswith("+86") and not _CN_MOBILE.match(digits[3:])):
        raise ValidationFailed("Enter a valid mobile number.", code="INVALID_PHONE", field=field)
    return digits


def mask_phone(phone: str) -> str:
    """+8613812345678 → +86138****5678 (for logs and staff screens)."""
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"
