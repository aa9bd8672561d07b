"""Quanzi settings, all from the environment.

Nothing set → the embedded single-process system `make run` serves: SQLite, in-memory channel layer,
local-memory cache, eager Celery tasks, console SMS, logging push backend, dev keys.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from backend.core.keyspec import channel_layer_keys
from backend.core.standins import guard_stand_in, throwaway_secrets

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


DEBUG = env_bool("DEBUG", default=False)
UNDER_PYTEST = "pytest" in sys.modules
if env_bool("QUANZI_TESTING") and not DEBUG and not UNDER_PYTEST:
    raise ImproperlyConfigured(
        "Refusing to start: QUANZI_TESTING lifts production guards (test password hashing, development "
        "stand-ins) and is refused with DEBUG off. Use DEBUG=1, or the explicit ALLOW_* opt-ins "
        "(docs/operations.md)."
    )
TESTING = UNDER_PYTEST or env_bool("QUANZI_TESTING")
if UNDER_PYTEST:
    # This test run's own secrets, never the published development ones, exported to the environment so the
    # Daphne and Celery processes the tests start share them and run as production does (DEBUG off).
    for _name, _value in throwaway_secrets().items():
        os.environ.setdefault(_name, _value)

DEV_SECRET_KEY = "quanzi-dev-secret-key-not-for-production-0123456789"
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)

# Encryption keys: "id=base64(32 bytes),..." — the first key encrypts new data.
_dev_key = base64.b64encode(hashlib.sha256(b"quanzi-dev-encryption-key").digest()).decode()
DEV_QUANZI_KEYS = f"dev1={_dev_key}"
QUANZI_KEYS = os.environ.get("QUANZI_KEYS", DEV_QUANZI_KEYS)
DEV_BLIND_INDEX_KEY = "quanzi-dev-blind-index-key"
QUANZI_BLIND_INDEX_KEY = os.environ.get("QUANZI_BLIND_INDEX_KEY", DEV_BLIND_INDEX_KEY)
JWT_SIGNING_KEY = os.environ.get("JWT_SIGNING_KEY", SECRET_KEY)

if not DEBUG and not TESTING:
    defaults_in_use = [
        name
        for name, value, default in (
            ("SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY),
            ("QUANZI_KEYS", QUANZI_KEYS, DEV_QUANZI_KEYS),
            ("QUANZI_BLIND_INDEX_KEY", QUANZI_BLIND_INDEX_KEY, DEV_BLIND_INDEX_KEY),
        )
        if value == default
    ]
    if defaults_in_use:
        raise ImproperlyConfigured(
            "Refusing to start with DEBUG off and development secrets: set " + ", ".join(defaults_in_use)
        )

# Development stand-ins. With DEBUG off (outside tests) each one must be opted in to explicitly, by its own
# variable (core.standins.guard_stand_in). The console SMS sender and the push backend are checked here; the
# sandbox bank gateway by the wallet app at start-up and `seed_demo` by the command itself (both read these).
ALLOW_CONSOLE_SMS = env_bool("ALLOW_CONSOLE_SMS")  # SMS codes printed to the log instead of sent
ALLOW_LOGGING_PUSH = env_bool("ALLOW_LOGGING_PUSH")  # pushes logged (and marked delivered) instead of sent
ALLOW_SANDBOX_GATEWAY = env_bool("ALLOW_SANDBOX_GATEWAY")  # the bank is simulated: no real money moves
ALLOW_DEMO_DATA = env_bool("ALLOW_DEMO_DATA")  # seed_demo: demo users and a superuser with a published password
DEVELOPMENT_SMS_SENDERS = {"backend.accounts.sms.ConsoleSmsSender", "backend.accounts.sms.OutboxSmsSender"}


ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
if DEBUG or TESTING:
    ALLOWED_HOSTS += ["testserver", "*"] if TESTING else []
# Load balancers / reverse proxies in front of Daphne (IPs or CIDRs, comma-separated). X-Forwarded-For is
# believed only from these peers, rightmost-untrusted first (backend/core/clientip.py). Empty: never believed.
TRUSTED_PROXIES = [p.strip() for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or CIDR") from _exc
# Browser origins allowed to open the WebSocket; native apps send no Origin header and are allowed.
WS_ALLOWED_ORIGINS = [o.strip() for o in os.environ.get("WS_ALLOWED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "graphene_django",
    "backend.core",
    "backend.accounts",
    "backend.notifications",
    "backend.chat",
    "backend.wallet",
    "backend.circles",
    "backend.payments",
    "backend.referrals",
    "backend.advisors",
    "backend.campaigns",
    "backend.loans",
    "backend.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "backend.accounts.middleware.BearerTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "backend.urls"
ASGI_APPLICATION = "backend.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        options: dict = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        # A connection pool (psycopg_pool), as Django advises for ASGI servers: every database call from a
        # socket used to open a new connection (CONN_MAX_AGE=0). Per process; DATABASE_POOL_MAX_SIZE=0 turns
        # it off (then connections are opened per call, as before).
        pool_max = int(os.environ.get("DATABASE_POOL_MAX_SIZE") or 12)
        if pool_max > 0 and "pool" not in options:
            options["pool"] = {"min_size": 1, "max_size": pool_max, "timeout": 10, "max_idle": 300,
                               "max_lifetime": 1800}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "quanzi",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 0,
            "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME") or None},
        }
    if parsed.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parsed.path) or BASE_DIR / "quanzi.sqlite3"}
    raise ImproperlyConfigured(f"Unsupported DATABASE_URL scheme {parsed.scheme!r}")


DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "quanzi.sqlite3")),
            # A file, not :memory:, so a Daphne started by the end-to-end tests sees the test data.
            "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME") or str(BASE_DIR / ".test-db.sqlite3")},
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, the same as channels-redis's blocking receive,
                # so idle sockets died with 1011; its default pool of 100 broke ~200 sockets connecting at once.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "max_connections": 1000}],
                "prefix": os.environ.get("CHANNELS_PREFIX", "quanzi"),
                "capacity": 5000,  # per Daphne process inbox, shared by all its sockets
                "expiry": 30,
                # Doorbells carry rendered messages: encrypted (Fernet) so Redis never holds message text in
                # clear. Every node needs the same keys (CHANNEL_LAYER_KEYS, else derived from QUANZI_KEYS).
                "symmetric_encryption_keys": channel_layer_keys(
                    dedicated=os.environ.get("CHANNEL_LAYER_KEYS", ""), data_keys=QUANZI_KEYS),
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "quanzi"),
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
else:
    # capacity: per channel; a node's one channel hears all its sockets' groups (backend/chat/fanout.py)
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 5000}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "quanzi"}}
    CELERY_BROKER_URL = "memory://localhost/"  # with a host: kombu warns "No hostname was supplied" without
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_BEAT_SCHEDULE: dict = {}  # apps register their periodic jobs in their AppConfig.ready()

# --- notifications: push (FCM) and periodic jobs ---------------------------------------------------------
# FCM_CREDENTIALS: path to a Firebase service-account JSON → pushes go out through firebase-admin (FCM HTTP v1).
# Unset → the logging push backend (embedded default); the notifications app says so at start-up.
# FCM_ENDPOINT overrides FCM's base URL (tests point it at a stub on loopback); leave it unset in production.
# Periodic jobs are not listed here: apps call backend.notifications.schedule.register_periodic(), which
# fills CELERY_BEAT_SCHEDULE; `manage.py run_due_jobs` runs them all once, as of core.clock.
FCM_CREDENTIALS = os.environ.get("FCM_CREDENTIALS", "")
FCM_ENDPOINT = os.environ.get("FCM_ENDPOINT", "")
PUSH = {
    "BATCH_SIZE": env_int("FCM_BATCH_SIZE", 500),  # messages per firebase-admin send_each call (max 500)
    "HTTP_TIMEOUT_SECONDS": 10,
    # firebase-admin 7.7 moves from registration tokens to installation ids: address a device that has both
    # by its installation id once the apps ship FID-capable SDKs.
    "PREFER_INSTALLATION_ID": env_bool("FCM_PREFER_INSTALLATION_ID", default=False),
    "COLLAPSE_WINDOW_SECONDS": 60,  # at most one push per collapse key per window; the rest fold into one
    "MAX_ATTEMPTS": 6,
    "RETRY_BASE_SECONDS": 30,  # doubled per attempt, capped; never sooner than FCM's Retry-After
    "RETRY_MAX_SECONDS": 3600,
    "SWEEP_EVERY_SECONDS": 30,
    "SWEEP_GRACE_SECONDS": 15,  # a pending row younger than this is left to its after-commit task
    "SWEEP_BATCH": 200,
    # a row claimed longer ago than this by a dead worker is claimed again (env: the fault tests shorten it)
    "CLAIM_LEASE_SECONDS": env_int("PUSH_CLAIM_LEASE_SECONDS", 300),
}
# --- end of notifications block -------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["backend.accounts.backends.PhonePasswordBackend"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
if TESTING:
    # Argon2 at full cost makes a test suite slow; production keeps the real parameters.
    PASSWORD_HASHERS = ["backend.accounts.hashers.FastArgon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

GRAPHENE = {
    "SCHEMA": "backend.schema.schema",
    "ATOMIC_MUTATIONS": False,  # each service owns its transaction
}

# Circles send alumni verification codes by e-mail; without a configured backend they are printed.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

QUANZI = {
    "ACCESS_TOKEN_SECONDS": env_int("ACCESS_TOKEN_SECONDS", 600),
    "REFRESH_TOKEN_DAYS": env_int("REFRESH_TOKEN_DAYS", 30),
    "OTP_TTL_SECONDS": 300,
    "OTP_MAX_ATTEMPTS": 5,
    "OTP_PER_PHONE_PER_HOUR": 5,
    "OTP_PER_IP_PER_HOUR": 30,
    "LOGIN_PER_PHONE_PER_HOUR": 10,
    "LOGIN_PER_IP_PER_HOUR": 60,
    "SMS_SENDER": os.environ.get("SMS_SENDER", "backend.accounts.sms.ConsoleSmsSender"),
    "GRAPHQL_MAX_DEPTH": 10,
    "GRAPHQL_MAX_ALIASES": 15,
    "GRAPHQL_MAX_COST": 5000,
    "GRAPHQL_MAX_NESTING": 32,  # selection sets inside each other, fragments and inline fragments included
    "GRAPHQL_MAX_DOCUMENT_CHARS": 16 * 1024,
    "GRAPHQL_MAX_TOKENS": 2000,
    "WS_AUTH_TIMEOUT_SECONDS": float(os.environ.get("WS_AUTH_TIMEOUT_SECONDS", "5")),
    "WS_MAX_FRAME_BYTES": 64 * 1024,
    # A socket re-checks its session (device signed out, account disabled, token expired) on every ping and
    # at least this often on its own, so a lost sign-out doorbell costs at most this long.
    "WS_SESSION_RECHECK_SECONDS": float(os.environ.get("WS_SESSION_RECHECK_SECONDS", "25")),
}

guard_stand_in("ALLOW_CONSOLE_SMS", in_use=QUANZI["SMS_SENDER"] in DEVELOPMENT_SMS_SENDERS,
               allowed=ALLOW_CONSOLE_SMS, development=DEBUG or TESTING,
               what="SMS login codes are printed to the log, not sent")
guard_stand_in("ALLOW_LOGGING_PUSH", in_use=not FCM_CREDENTIALS, allowed=ALLOW_LOGGING_PUSH,
               development=DEBUG or TESTING,
               what="pushes are written to the log and marked delivered (FCM_CREDENTIALS is not set), not sent")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "daphne": {"level": "WARNING"}},
}
