"""Verified identity: which display names a customer may not take.

Staff, client managers and service accounts carry a verified badge (`User.is_verified`) that no customer can
obtain. A customer's display name must not pass for one of them either, so chat cannot be used to impersonate
the bank (the reason 融e联 exists): names that contain a reserved word (the bank, its service desks, "client
manager", "official", ...) or read like a verified user's name after normalisation (width, case, spaces and
punctuation ignored) are refused with DISPLAY_NAME_RESERVED.
"""

from __future__ import annotations

import unicodedata

from django.db.models import Q

# Compared against the normalised name (NFKC, casefolded, letters and digits only).
RESERVED_WORDS = (
    "银行", "工行", "农行", "客服", "客户经理", "理财经理", "官方", "安全中心", "服务号", "融e联", "融e",
    "bank", "icbc", "abchina", "official", "support", "customerservice", "clientmanager", "relationshipmanager",
    "security", "admin", "staff", "quanzi", "圈子",
)


def normalized(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


def verified_users_q() -> Q:
    """Users who carry the verified badge (the same rule as `User.is_verified`)."""
    from .models import User

    return Q(is_staff=True) | Q(role__in=User.VERIFIED_ROLES)


def impersonation_problem(display_name: str, *, user_id: int | None = None) -> str | None:
    """Why a customer may not use this name, or None. `user_id` (the user renaming) is not compared to itself."""
    from .models import User

    name = normalized(display_name)
    if not name:
        return None
    if any(normalized(word) in name for word in RESERVED_WORDS):
        return "reserved"
    verified = User.objects.filter(verified_users_q()).exclude(pk=user_id).values_list("display_name", flat=True)
    if any(normalized(other) == name for other in verified.iterator()):
        return "mimics_verified"
    return None
