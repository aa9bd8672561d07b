"""One clear start-up line per infrastructure component, so an operator sees at a glance what this process
talks to: database, channel layer, cache, tasks and SMS sender here; the push backend's line comes from the
notifications app (which also checks its credentials). Secrets in URLs are masked."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection

log = logging.getLogger("quanzi.startup")


def _mask(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}{f':{parts.port}' if parts.port else ''}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def component_lines() -> list[str]:
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        database = f"database: SQLite {db['NAME']} (embedded; set DATABASE_URL for PostgreSQL)"
    else:
        pool = (db.get("OPTIONS") or {}).get("pool")
        database = (f"database: {connection.display_name} {db.get('NAME')} at {db.get('HOST') or 'local socket'}"
                    f":{db.get('PORT') or 'default'}" + (" (connection pool)" if pool else ""))
    redis = _mask(settings.REDIS_URL) if settings.REDIS_URL else ""
    layer = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
    channel = (f"channel layer: {layer} at {redis}" if "Redis" in layer
               else f"channel layer: {layer} (this process only; set REDIS_URL for several Daphne processes)")
    cache_backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    cache = f"cache: {cache_backend}" + (f" at {redis}" if "Redis" in cache_backend else " (this process only)")
    if settings.CELERY_TASK_ALWAYS_EAGER:
        tasks = "tasks: run eagerly in the calling process (no worker; set REDIS_URL to use Celery workers)"
    else:
        tasks = f"tasks: Celery workers through {_mask(settings.CELERY_BROKER_URL)}"
    sms = f"SMS: {settings.QUANZI['SMS_SENDER']}"
    return [database, channel, cache, tasks, sms]


def announce() -> None:
    for line in component_lines():
        log.info(line)
