"""Operations' writes from the admin: reviewing abuse flags."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from backend.core import clock

from ..models import AbuseFlag


def review_flag(*, flag_id: int, reviewer: Any, resolution: str) -> AbuseFlag:
    """Mark a flag reviewed (once; the first reviewer's resolution stands)."""
    with transaction.atomic():
        flag = AbuseFlag.objects.select_for_update().get(pk=flag_id)
        if flag.reviewed_at is None:
            flag.reviewed_at, flag.reviewed_by_id = clock.now(), reviewer.pk
            flag.resolution = resolution[:200]
            flag.save(update_fields=["reviewed_at", "reviewed_by", "resolution"])
        return flag
