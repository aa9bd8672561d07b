"""Push backends: firebase-admin (FCM HTTP v1) when FCM_CREDENTIALS is set, else a logging backend.

A backend only talks to FCM and classifies each device's outcome (delivered / retry / deactivate / failed);
`services.deliver_push` decides what that means for the notification row and the device.

FCM error handling follows the FCM HTTP v1 guide:
- UNREGISTERED (404), SENDER_ID_MISMATCH (403), an invalid token (400 INVALID_ARGUMENT about the token)
  → the token is dead: deactivate the device's push target.
- QUOTA_EXCEEDED (429) and 5xx (or no response at all) → retry with backoff, never before Retry-After.
- anything else → failed for this device, with the error as the reason.

firebase-admin 7.7 deprecates registration tokens in favour of Firebase installation ids (`fid`). A device
row may carry either or both; `PUSH["PREFER_INSTALLATION_ID"]` chooses which to address when it has both,
so switching over is a setting, not a migration.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import enum
import hashlib
import ipaddress
import json
import logging
import threading
import time
import urllib.parse
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from backend.accounts.models import Device
from backend.core import clock

log = logging.getLogger("quanzi.push")

FCM_DEFAULT_BASE = "https://fcm.googleapis.com"
MAX_RETRY_AFTER_SECONDS = 24 * 3600


@dataclass(frozen=True)
class PushTarget:
    """One device, addressed by a registration token or a Firebase installation id."""

    device_id: int
    platform: str
    kind: str  # "token" | "fid"
    value: str


@dataclass(frozen=True)
class PushContent:
    """What every device of the recipient is sent. `data` holds ids only (strings, as FCM requires)."""

    title: str
    body: str
    data: dict[str, str]
    collapse_key: str = ""
    channel: str = "default"
    high_priority: bool = False
    badge: int | None = None
    count: int = 1
    ttl_seconds: int = 86400


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEACTIVATE = "deactivate"
    FAILED = "failed"


@dataclass(frozen=True)
class DeviceResult:
    target: PushTarget
    outcome: Outcome
    reason: str = ""
    message_id: str = ""
    retry_after: float | None = None


class PushBackend(Protocol):
    name: str

    def send(self, content: PushContent, targets: list[PushTarget]) -> list[DeviceResult]: ...

    def close(self) -> None: ...


def target_for(device: Device, *, prefer_installation_id: bool) -> PushTarget | None:
    """How to address a device; None when it has neither a token nor an installation id."""
    options = [("token", device.fcm_token), ("fid", device.installation_id)]
    if prefer_installation_id:
        options.reverse()
    for kind, value in options:
        if value:
            return PushTarget(device_id=device.pk, platform=device.platform, kind=kind, value=value)
    return None


# --- the logging backend (embedded default) ----------------------------------------------------


class LoggingPushBackend:
    """No FCM credentials: write one log line per device instead of sending. Never logs text or amounts."""

    name = "logging"

    def send(self, content: PushContent, targets: list[PushTarget]) -> list[DeviceResult]:
        results = []
        for target in targets:
            log.info(
                "push not sent (no FCM_CREDENTIALS): device=%s platform=%s target=%s collapse=%s data=%s",
                target.device_id, target.platform, target.kind, content.collapse_key or "-",
                ",".join(f"{k}={v}" for k, v in sorted(content.data.items())),
            )
            results.append(DeviceResult(target, Outcome.DELIVERED, reason="logged", message_id="logged"))
        return results

    def close(self) -> None:
        pass


# --- firebase-admin ----------------------------------------------------------------------------


@dataclass
class FirebasePushBackend:
    """Sends through firebase-admin's `messaging.send_each`, in chunks of at most 500 messages.

    `endpoint` overrides the FCM base URL (tests point it at a stub on loopback). firebase-admin has no public
    option for that, so we set the messaging service's `_fcm_url`; pyproject pins firebase-admin <8 and the
    constructor fails loudly if the attribute ever disappears. We also replace the library's in-call retry
    (up to 4 retries of 500/503, sleeping through Retry-After inside the worker) with none: retries belong
    to our outbox, which honours Retry-After without holding a worker, and retries only the devices that
    did not get the message.

    An endpoint on loopback (a stub FCM) means nothing may leave the machine: the service account's token_uri
    must be on loopback too, and google-auth's Regional Access Boundary lookup is switched off. google-auth
    (2.5x+) starts that lookup in a background thread after every token refresh and always sends it to
    iamcredentials.googleapis.com, whatever token_uri or FCM endpoint says; against Google it is harmless.
    """

    credentials_path: str
    endpoint: str = ""
    batch_size: int = 500
    timeout: float = 10.0
    name: str = field(default="firebase", init=False)

    def __post_init__(self) -> None:
        import firebase_admin
        import requests
        from firebase_admin import credentials, messaging
        from urllib3.util import retry

        try:
            credential = credentials.Certificate(self.credentials_path)
        except (OSError, ValueError) as exc:
            raise ImproperlyConfigured(f"FCM_CREDENTIALS: cannot load service account: {exc}") from exc
        if self.endpoint and _is_loopback_url(self.endpoint):
            _keep_on_loopback(credential.get_credential())
        app_name = "quanzi-push-" + hashlib.sha256(
            f"{self.credentials_path}|{self.endpoint}|{id(self)}".encode()
        ).hexdigest()[:12]
        self.app = firebase_admin.initialize_app(credential, {"httpTimeout": self.timeout}, name=app_name)
        self.project_id = self.app.project_id
        service = messaging._get_messaging_service(self.app)
        if not hasattr(service, "_fcm_url") or not hasattr(service, "_client"):
            raise ImproperlyConfigured("this firebase-admin version is not supported (no _fcm_url/_client)")
        base = (self.endpoint or FCM_DEFAULT_BASE).rstrip("/")
        service._fcm_url = f"{base}/v1/projects/{self.project_id}/messages:send"
        no_status_retries = retry.Retry(
            total=None, connect=1, read=0, redirect=0, status=0, other=0, allowed_methods=None,
            raise_on_status=False, respect_retry_after_header=False,
        )
        adapter = requests.adapters.HTTPAdapter(pool_connections=10, pool_maxsize=100, max_retries=no_status_retries)
        service._client.session.mount(base + "/", adapter)
        self._messaging = messaging

    def send(self, content: PushContent, targets: list[PushTarget]) -> list[DeviceResult]:
        results: list[DeviceResult] = []
        size = max(1, min(int(self.batch_size), 500))
        for start in range(0, len(targets), size):
            chunk = targets[start:start + size]
            messages = [build_message(content, target) for target in chunk]
            try:
                batch = self._messaging.send_each(messages, app=self.app)
            except Exception as exc:  # the whole chunk failed before any answer: retry all of it
                log.warning("FCM batch failed: %s", exc)
                results.extend(DeviceResult(t, Outcome.RETRY, reason=_short(f"BATCH_ERROR: {exc}")) for t in chunk)
                continue
            for target, response in zip(chunk, batch.responses, strict=True):
                if response.success:
                    results.append(DeviceResult(target, Outcome.DELIVERED, message_id=response.message_id or ""))
                else:
                    outcome, reason, retry_after = classify(response.exception)
                    results.append(DeviceResult(target, outcome, reason=reason, retry_after=retry_after))
        return results

    def close(self) -> None:
        import firebase_admin

        try:
            firebase_admin.delete_app(self.app)
        except ValueError:
            pass


def build_message(content: PushContent, target: PushTarget):
    """One firebase-admin Message for one device, with only that platform's options."""
    from firebase_admin import messaging

    collapse = content.collapse_key or None
    android = apns = None
    if target.platform == Device.Platform.ANDROID:
        android = messaging.AndroidConfig(
            collapse_key=collapse,
            priority="high" if content.high_priority else "normal",
            ttl=dt.timedelta(seconds=content.ttl_seconds),
            notification=messaging.AndroidNotification(
                tag=collapse, channel_id=content.channel,
                notification_count=content.count if content.count > 1 else None,
            ),
        )
    elif target.platform == Device.Platform.IOS:
        headers = {
            "apns-priority": "10" if content.high_priority else "5",
            "apns-push-type": "alert",
            "apns-expiration": str(int(clock.now().timestamp()) + content.ttl_seconds),
        }
        if collapse:
            headers["apns-collapse-id"] = collapse.encode()[:64].decode(errors="ignore")
        apns = messaging.APNSConfig(
            headers=headers,
            payload=messaging.APNSPayload(aps=messaging.Aps(badge=content.badge, sound="default", thread_id=collapse)),
        )
    kwargs: dict[str, Any] = {
        "notification": messaging.Notification(title=content.title, body=content.body or None),
        "data": dict(content.data),
        "android": android,
        "apns": apns,
    }
    if target.kind == "fid":
        return messaging.Message(fid=target.value, **kwargs)
    with warnings.catch_warnings():  # Message.token is deprecated in 7.7; FCM still accepts tokens
        warnings.simplefilter("ignore", DeprecationWarning)
        return messaging.Message(token=target.value, **kwargs)


def classify(exc: BaseException | None) -> tuple[Outcome, str, float | None]:
    """Map a firebase-admin exception to what we do about that device, a reason and a Retry-After."""
    from firebase_admin import exceptions, messaging

    if exc is None:
        return Outcome.FAILED, "UNKNOWN: no response", None
    response = getattr(exc, "http_response", None)
    status = getattr(response, "status_code", None)
    code = _fcm_error_code(response) or getattr(exc, "code", "") or type(exc).__name__
    message = str(exc)
    if isinstance(exc, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return Outcome.DEACTIVATE, code, None
    if isinstance(exc, exceptions.NotFoundError):
        return Outcome.DEACTIVATE, "UNREGISTERED", None
    if isinstance(exc, exceptions.InvalidArgumentError) and _is_token_problem(response, message):
        return Outcome.DEACTIVATE, "INVALID_TOKEN", None
    if isinstance(exc, messaging.QuotaExceededError) or status == 429 or (status is not None and status >= 500):
        return Outcome.RETRY, code, _retry_after(response)
    if response is None and isinstance(
        exc, exceptions.UnavailableError | exceptions.DeadlineExceededError | exceptions.UnknownError
    ):
        return Outcome.RETRY, f"NETWORK: {_short(message, 150)}", None
    return Outcome.FAILED, _short(f"{code}: {message}"), None


def _response_json(response) -> dict:
    if response is None:
        return {}
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _fcm_error_code(response) -> str:
    error = _response_json(response).get("error") or {}
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.firebase.fcm.v1.FcmError"):
            return str(detail.get("errorCode") or "")
    return str(error.get("status") or "") if isinstance(error, dict) else ""


def _is_token_problem(response, message: str) -> bool:
    """A 400 INVALID_ARGUMENT blames the token (not our payload) when FCM says so."""
    error = _response_json(response).get("error") or {}
    for detail in error.get("details") or []:
        for violation in (detail or {}).get("fieldViolations") or []:
            if str(violation.get("field", "")) in {"message.token", "message.fid"}:
                return True
    text = message.lower()
    return "registration token" in text or "installation id" in text


def _retry_after(response) -> float | None:
    if response is None:
        return None
    raw = (response.headers or {}).get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(min(int(raw), MAX_RETRY_AFTER_SECONDS))
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), MAX_RETRY_AFTER_SECONDS))


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- which backend -----------------------------------------------------------------------------

_backend: PushBackend | None = None
_backend_source: tuple | None = None
_backend_lock = threading.Lock()


def _source() -> tuple:
    push = settings.PUSH
    return (settings.FCM_CREDENTIALS, settings.FCM_ENDPOINT, push["BATCH_SIZE"], push["HTTP_TIMEOUT_SECONDS"])


def get_backend() -> PushBackend:
    """The process-wide backend, rebuilt when the settings that shape it change (tests override them)."""
    global _backend, _backend_source
    source = _source()
    with _backend_lock:
        if _backend is None or source != _backend_source:
            if _backend is not None:
                _backend.close()
            credentials_path, endpoint, batch_size, timeout = source
            if credentials_path:
                _backend = FirebasePushBackend(
                    credentials_path=credentials_path, endpoint=endpoint, batch_size=batch_size, timeout=timeout
                )
            else:
                _backend = LoggingPushBackend()
            _backend_source = source
        return _backend


def _is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _keep_on_loopback(google_credential: Any) -> None:
    """Stub mode: refuse a token_uri off the machine and turn off google-auth's IAM lookup (see the class)."""
    token_uri = getattr(google_credential, "_token_uri", "")
    if not _is_loopback_url(token_uri):
        raise ImproperlyConfigured(
            f"FCM_ENDPOINT is on loopback but the service account's token_uri is {token_uri!r}: "
            "a stub FCM needs a token_uri on loopback too, or the token request leaves the machine"
        )
    if hasattr(google_credential, "_is_regional_access_boundary_lookup_required"):
        google_credential._is_regional_access_boundary_lookup_required = lambda: False


def describe_backend() -> str:
    if settings.FCM_CREDENTIALS:
        where = settings.FCM_ENDPOINT or FCM_DEFAULT_BASE
        return f"push: FCM through firebase-admin ({where}), credentials {settings.FCM_CREDENTIALS}"
    return "push: FCM_CREDENTIALS is not set: pushes are written to the log, not sent (logging backend)"


def announce() -> None:
    """The start-up line saying where pushes go; fails fast on unreadable credentials."""
    if settings.FCM_CREDENTIALS:
        try:
            with open(settings.FCM_CREDENTIALS, encoding="utf-8") as handle:
                info = json.load(handle)
        except (OSError, ValueError) as exc:
            raise ImproperlyConfigured(f"FCM_CREDENTIALS={settings.FCM_CREDENTIALS!r} is unreadable: {exc}") from exc
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ImproperlyConfigured("FCM_CREDENTIALS must be a Firebase service-account JSON file")
        log.info(describe_backend())
    elif settings.DEBUG or settings.TESTING:
        log.info(describe_backend())
    else:
        log.warning(describe_backend())
