"""Who has a live socket right now, on any node.

The chat consumer writes (opened / heartbeat / closed); chat and notifications read. With REDIS_URL each
user has a sorted set of socket channel names scored by expiry, so a node that dies without cleaning up
drops out after PRESENCE_TTL_SECONDS. Without Redis (the single-process embedded mode) a dict does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

from django.conf import settings

# Sockets heartbeat every 25 s. The environment may shorten it for tests of the expiry itself (tests/faults).
PRESENCE_TTL_SECONDS = int(os.environ.get("PRESENCE_TTL_SECONDS") or 60)

_local: dict[int, dict[str, float]] = {}
_last_seen_local: dict[int, float] = {}
_lock = threading.Lock()
_client = None


def _redis():
    global _client
    if not settings.REDIS_URL:
        return None
    if _client is None:
        import redis

        _client = redis.Redis.from_url(settings.REDIS_URL)
    return _client


def _key(user_id: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'quanzi')}:presence:{user_id}"


def _seen_key(user_id: int) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', 'quanzi')}:last_seen:{user_id}"


def socket_alive(user_id: int, channel_name: str) -> None:
    """Called on connect and on every heartbeat."""
    now = time.time()
    r = _redis()
    if r is None:
        with _lock:
            _local.setdefault(user_id, {})[channel_name] = now + PRESENCE_TTL_SECONDS
            _last_seen_local[user_id] = now
        return
    pipe = r.pipeline()
    pipe.zadd(_key(user_id), {channel_name: now + PRESENCE_TTL_SECONDS})
    pipe.zremrangebyscore(_key(user_id), "-inf", now)
    pipe.expire(_key(user_id), PRESENCE_TTL_SECONDS * 2)
    pipe.set(_seen_key(user_id), int(now), ex=90 * 86400)
    pipe.execute()


def socket_closed(user_id: int, channel_name: str) -> None:
    now = time.time()
    r = _redis()
    if r is None:
        with _lock:
            _local.get(user_id, {}).pop(channel_name, None)
            _last_seen_local[user_id] = now
        return
    pipe = r.pipeline()
    pipe.zrem(_key(user_id), channel_name)
    pipe.set(_seen_key(user_id), int(now), ex=90 * 86400)
    pipe.execute()


def is_online(user_id: int) -> bool:
    return user_id in online_among([user_id])


def online_among(user_ids: Iterable[int]) -> set[int]:
    ids = list(dict.fromkeys(user_ids))
    now = time.time()
    r = _redis()
    if r is None:
        with _lock:
            return {uid for uid in ids if any(exp > now for exp in _local.get(uid, {}).values())}
    if not ids:
        return set()
    global _count_live
    if _count_live is None:
        _count_live = r.register_script(_COUNT_LIVE)
    counts = _count_live(keys=[_key(uid) for uid in ids], args=[now], client=r)
    return {uid for uid, count in zip(ids, counts, strict=True) if count}


# One script call instead of a pipeline of one ZCOUNT per user: a send reads the presence of every member of
# its conversation (who gets a push row), under the conversation's lock; for 200 members the pipeline's 200
# commands cost milliseconds of Python to build and parse, one call with 200 keys a fraction of that.
_COUNT_LIVE = """
local out = {}
for i = 1, #KEYS do
    out[i] = redis.call('ZCOUNT', KEYS[i], ARGV[1], '+inf')
end
return out
"""
_count_live = None


def last_seen(user_id: int) -> float | None:
    """Unix time of the user's last socket activity, or None if never seen."""
    r = _redis()
    if r is None:
        with _lock:
            return _last_seen_local.get(user_id)
    raw = r.get(_seen_key(user_id))
    return float(raw) if raw else None


def clear_local() -> None:
    with _lock:
        _local.clear()
        _last_seen_local.clear()


def last_seen_among(user_ids: Iterable[int]) -> dict[int, float]:
    """`last_seen` of many users at once (one round trip); users never seen are left out."""
    ids = list(dict.fromkeys(user_ids))
    r = _redis()
    if r is None:
        with _lock:
            return {uid: _last_seen_local[uid] for uid in ids if uid in _last_seen_local}
    if not ids:
        return {}
    raw = r.mget([_seen_key(uid) for uid in ids])
    return {uid: float(value) for uid, value in zip(ids, raw, strict=True) if value}
