"""Doorbells carry message text through Redis: the configured channel layer encrypts them."""

from __future__ import annotations

import uuid

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from django.conf import settings

import backend.settings as project_settings
from backend.core.keyspec import channel_layer_keys

SECRET_TEXT = "my card pin is 8264-secret"


def test_keys_come_from_channel_layer_keys_or_are_derived_from_the_data_keys():
    data_keys = "a1=" + "A" * 43 + "=,b2=" + "B" * 43 + "="
    derived = channel_layer_keys(dedicated="", data_keys=data_keys)
    assert len(derived) == 2 and len(set(derived)) == 2  # one per data key, the primary's first
    assert derived[0] == channel_layer_keys(dedicated="", data_keys=data_keys.split(",")[0])[0]
    assert "A" * 43 not in "".join(derived)  # not the data key itself
    assert channel_layer_keys(dedicated="new, old", data_keys=data_keys) == ["new", "old"]


def _raw_payloads(client: redis.Redis, prefix: str) -> bytes:
    raw = b""
    for key in client.scan_iter(f"{prefix}*"):
        kind = client.type(key)
        if kind == b"zset":
            raw += b"".join(client.zrange(key, 0, -1))
        elif kind == b"list":
            raw += b"".join(client.lrange(key, 0, -1))
        elif kind == b"string":
            raw += client.get(key) or b""
    return raw


async def _send_and_read_raw(config: dict) -> tuple[bytes, dict]:
    layer = RedisChannelLayer(**config)
    try:
        channel = await layer.new_channel()
        await layer.group_add("conversation.test", channel)
        await layer.group_send("conversation.test", {"type": "chat.message", "text": SECRET_TEXT})
        raw = _raw_payloads(redis.Redis.from_url(settings.REDIS_URL), config["prefix"])
        received = await layer.receive(channel)
        return raw, received
    finally:
        await layer.flush()
        await layer.close_pools()


@pytest.mark.asyncio
async def test_a_group_send_is_not_readable_in_redis(require_redis):
    config = dict(project_settings.CHANNEL_LAYERS["default"]["CONFIG"])
    assert config["symmetric_encryption_keys"], "the configured Redis layer must carry encryption keys"
    config["prefix"] = f"test-enc-{uuid.uuid4().hex[:8]}"
    raw, received = await _send_and_read_raw(config)
    assert raw, "the raw read found nothing: it would prove nothing"
    assert SECRET_TEXT.encode() not in raw
    assert received["text"] == SECRET_TEXT  # the receiving node decrypts

    clear = {k: v for k, v in config.items() if k != "symmetric_encryption_keys"}
    clear["prefix"] = f"test-clear-{uuid.uuid4().hex[:8]}"
    raw, _ = await _send_and_read_raw(clear)
    assert SECRET_TEXT.encode() in raw  # the same raw read does see text a layer without keys stores
