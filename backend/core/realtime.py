"""The doorbell: tell live sockets that something changed. The database stays the truth.

Group names live here so any app can ring a user's or a device's sockets without importing chat.
Rings are sent after the surrounding transaction commits, so nobody hears of a row they cannot read yet.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger("quanzi.realtime")


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def device_group(device_id: int) -> str:
    return f"device.{device_id}"


def ring_now(group: str, event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:  # a lost doorbell is recovered by the client's resume; never fail the write
        log.warning("doorbell to %s failed", group, exc_info=True)


def ring_on_commit(group: str, event: dict) -> None:
    transaction.on_commit(lambda: ring_now(group, event))
