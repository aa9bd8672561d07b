"""System notices other apps post into a conversation (e.g. the circles app's 公开通报 of a defaulter)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..models import Message
from ._base import _lock_conversation, _system


def post_system_notice(*, conversation_id: int, event: str, text: str, **details: Any) -> Message:
    """Trusted server code only: a system message every active member sees (no sender, no push)."""
    with transaction.atomic():
        conversation = _lock_conversation(conversation_id)
        return _system(conversation, actor_id=None, event=event, text=text, **details)
