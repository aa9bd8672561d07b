"""Fixed-window rate limits on the shared cache (Redis in production, so all nodes count together)."""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from .errors import RateLimited


def hit(bucket: str, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one attempt; raise RateLimited when `limit` attempts were already made in this window."""
    window = int(time.time() // window_seconds)
    cache_key = f"rl:{bucket}:{key}:{window}"
    count = _count_on_redis(cache_key, window_seconds + 1)
    if count is None:
        # add() is atomic on Redis and the local-memory cache: it only sets when absent.
        if cache.add(cache_key, 1, timeout=window_seconds + 1):
            count = 1
        else:
            try:
                count = cache.incr(cache_key)
            except ValueError:  # expired between add and incr
                cache.add(cache_key, 1, timeout=window_seconds + 1)
                count = 1
    if count > limit:
        retry_after = int(window_seconds - (time.time() % window_seconds)) + 1
        raise RateLimited(retry_after=retry_after)


def _count_on_redis(cache_key: str, timeout: int) -> int | None:
    """On Django's Redis cache, count in one round trip (SET NX with the expiry, then INCR, pipelined) instead
    of add + exists + incr (three; rate limits sit on hot paths such as every chat send). The counter is a
    plain integer under the cache's own key, so `cache.get` / `reset` see it as before. None on other caches."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    full_key = backend.make_and_validate_key(cache_key)
    pipe = _client_for(backend).pipeline(transaction=False)
    pipe.set(full_key, 0, ex=timeout, nx=True)
    pipe.incr(full_key)
    return int(pipe.execute()[1])


_clients: dict[object, Any] = {}  # connection pool → a redis.Redis on it


def _client_for(backend: RedisCache) -> Any:
    """Django's cache builds a new redis.Redis object on every get_client() (its response-callback table
    alone is ~170 dict writes): one per pool is kept here instead, on the cache's own write pool."""
    pool = backend._cache._get_connection_pool(write=True)
    client = _clients.get(pool)
    if client is None:
        client = _clients[pool] = backend._cache._client(connection_pool=pool)
    return client


def reset(bucket: str, key: str, *, window_seconds: int) -> None:
    window = int(time.time() // window_seconds)
    cache.delete(f"rl:{bucket}:{key}:{window}")


class TokenBucket:
    """An in-process token bucket (one per socket, so no shared cache round trip per frame): up to
    `capacity` tokens, refilled continuously at `per_second`. Slotted: one lives as long as every socket."""

    __slots__ = ("capacity", "per_second", "tokens", "updated")

    def __init__(self, *, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens = float(capacity)
        self.updated = time.monotonic()

    def take(self, cost: float) -> float:
        """Take `cost` tokens (at most a full bucket, so any single frame can pass eventually). Returns 0 when
        taken, else the seconds until they would be there (and takes nothing)."""
        cost = min(cost, self.capacity)
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.per_second if self.per_second > 0 else float("inf")
