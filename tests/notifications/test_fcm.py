"""Push through the real firebase-admin library to a stub FCM server on loopback: what arrives, and what
each FCM error does to the device and the notification."""

from __future__ import annotations

import datetime as dt
import email.utils
import time

import pytest

from backend.accounts.models import Device
from backend.core import clock
from backend.notifications import push, services
from backend.notifications.models import Notification, PushDelivery

from . import fcm_stub
from .conftest import make_user, reload

pytestmark = pytest.mark.django_db

State = Notification.PushState


def send(user, **fields) -> Notification:
    """notify() in a transaction; the after-commit task runs (eagerly) when it commits."""
    values = {"kind": "money", "event": "wallet.transfer_received", "title": "Ada sent you ¥50.00",
              "body": "Dinner money", "payload": {"transfer_id": "VHJhbnNmZXI6Nw==", "amount_fen": 5000}}
    values.update(fields)
    from django.db import transaction

    with transaction.atomic():
        notification = services.notify(recipient_id=user.pk, **values)
    return reload(notification)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run on_commit hooks (the enqueue) for code that runs inside the test's transaction."""

    def _send(user, **fields):
        with django_capture_on_commit_callbacks(execute=True):
            return send(user, **fields)

    return _send


def test_push_arrives_with_ids_only_and_a_generic_title(fcm, commit):
    user = make_user(("android", "tok-android"))
    notification = commit(user)

    assert reload(notification).push_state == State.SENT
    [message] = fcm.delivered_to("tok-android")
    assert message["notification"] == {"title": "账户动态 Account activity"}  # no name, amount or text
    assert message["data"] == {
        "notification_id": services.encode_id("Notification", notification.pk),
        "kind": "money", "event": "wallet.transfer_received", "payload_transfer_id": "VHJhbnNmZXI6Nw==",
    }
    assert "50" not in str(message) and "Dinner" not in str(message) and "Ada" not in str(message)
    # firebase-admin fetched an access token with a JWT signed by the service account, and used it.
    assert fcm.token_requests >= 1
    assert fcm.requests[0]["path"] == "/v1/projects/quanzi-test/messages:send"


def test_preview_opt_in_puts_the_text_in_the_push(fcm, commit):
    user = make_user(("android", "tok-preview"))
    services.update_preferences(user_id=user.pk, show_previews=True)
    commit(user)
    [message] = fcm.delivered_to("tok-preview")
    assert message["notification"] == {"title": "Ada sent you ¥50.00", "body": "Dinner money"}
    assert "amount_fen" not in str(message["data"])  # data stays ids-only even with previews


def test_android_and_apns_options_per_platform(fcm, commit):
    user = make_user(("android", "tok-a"), ("ios", "tok-i"))
    commit(user, kind="message", event="chat.message", title="Ada", body="hi", payload={"message_id": "TWVzc2FnZTox"},
           conversation_id=42)
    [android] = fcm.delivered_to("tok-a")
    [ios] = fcm.delivered_to("tok-i")
    assert android["android"] == {
        "collapse_key": "conversation:42", "priority": "high", "ttl": "86400s",
        "notification": {"tag": "conversation:42", "channel_id": "message"},
    }
    assert "apns" not in android
    assert ios["apns"]["headers"]["apns-collapse-id"] == "conversation:42"
    assert ios["apns"]["headers"]["apns-priority"] == "10"
    assert ios["apns"]["headers"]["apns-push-type"] == "alert"
    assert ios["apns"]["payload"]["aps"] == {"badge": 1, "sound": "default", "thread-id": "conversation:42"}
    assert "android" not in ios
    assert android["data"]["conversation_id"] == "42"
    assert android["notification"] == {"title": "新消息 New message"}


def test_sends_in_chunks_to_every_device(fcm, commit, settings):
    settings.PUSH = {**settings.PUSH, "BATCH_SIZE": 2}
    user = make_user(*[("android", f"tok-chunk-{i}") for i in range(5)])
    backend = push.get_backend()
    real_messaging, chunks = backend._messaging, []

    class Spy:  # passes every call through to the real firebase-admin, remembering the chunk sizes
        @staticmethod
        def send_each(messages, app=None):
            chunks.append(len(messages))
            return real_messaging.send_each(messages, app=app)

    backend._messaging = Spy
    try:
        notification = commit(user)
    finally:
        backend._messaging = real_messaging
    assert chunks == [2, 2, 1]
    assert sorted(m["token"] for m in fcm.messages) == [f"tok-chunk-{i}" for i in range(5)]
    assert reload(notification).deliveries.filter(state=PushDelivery.State.DELIVERED).count() == 5


def test_installation_ids_are_used_when_there_is_no_token_or_when_preferred(fcm, commit, settings):
    only_fid = make_user(("android", "", "fid-only"))
    both = make_user(("android", "tok-both", "fid-both"))
    commit(only_fid)
    commit(both)
    assert len(fcm.delivered_to("fid-only")) == 1 and "token" not in fcm.delivered_to("fid-only")[0]
    assert len(fcm.delivered_to("tok-both")) == 1 and not fcm.delivered_to("fid-both")

    settings.PUSH = {**settings.PUSH, "PREFER_INSTALLATION_ID": True}
    commit(both)
    assert len(fcm.delivered_to("fid-both")) == 1


@pytest.mark.parametrize(
    "reply, reason",
    [(fcm_stub.unregistered, "UNREGISTERED"), (fcm_stub.sender_id_mismatch, "SENDER_ID_MISMATCH"),
     (fcm_stub.invalid_token, "INVALID_TOKEN")],
)
def test_dead_tokens_switch_the_device_push_off(fcm, commit, reply, reason):
    user = make_user(("android", "tok-dead"), ("ios", "tok-alive"))
    fcm.script("tok-dead", reply())
    notification = commit(user)

    dead = Device.objects.get(user=user, platform="android")
    alive = Device.objects.get(user=user, platform="ios")
    assert (dead.push_enabled, dead.fcm_token) == (False, "")
    assert dead.revoked_at is None  # still signed in: only its push target is gone
    assert (alive.push_enabled, alive.fcm_token) == (True, "tok-alive")
    assert reload(notification).push_state == State.SENT
    delivery = PushDelivery.objects.get(notification=notification, device=dead)
    assert (delivery.state, delivery.error) == (PushDelivery.State.DEACTIVATED, reason)

    commit(user)  # the next push goes only to the live device
    assert fcm.attempts_to("tok-dead") == 1 and len(fcm.delivered_to("tok-alive")) == 2


def test_unregistered_installation_id_switches_push_off_but_keeps_the_id(fcm, commit):
    user = make_user(("android", "", "fid-gone"))
    fcm.script("fid-gone", fcm_stub.unregistered())
    notification = commit(user)
    device = Device.objects.get(user=user)
    assert (device.push_enabled, device.installation_id) == (False, "fid-gone")
    assert (reload(notification).push_state, notification.push_reason) == (
        State.SKIPPED, "no_devices: push targets unregistered")


def test_quota_exceeded_waits_for_retry_after_and_retries_only_that_device(fcm, commit):
    user = make_user(("android", "tok-quota"), ("android", "tok-fine"))
    fcm.script("tok-quota", fcm_stub.quota_exceeded(retry_after="120"))
    start = clock.now()
    with clock.frozen_at(start):
        notification = reload(commit(user))
    assert notification.push_state == State.FAILED and notification.push_attempts == 1
    assert notification.push_next_attempt_at == start + dt.timedelta(seconds=120)  # Retry-After beats 30 s backoff
    assert "QUOTA_EXCEEDED" in notification.push_reason
    assert len(fcm.delivered_to("tok-fine")) == 1

    with clock.frozen_at(start + dt.timedelta(seconds=119)):
        assert services.sweep_pending_pushes() == {}
    assert fcm.attempts_to("tok-quota") == 1

    with clock.frozen_at(start + dt.timedelta(seconds=121)):
        assert services.sweep_pending_pushes() == {"sent": 1}
    assert len(fcm.delivered_to("tok-quota")) == 1
    assert len(fcm.delivered_to("tok-fine")) == 1  # not sent twice
    notification = reload(notification)
    assert (notification.push_state, notification.push_attempts) == (State.SENT, 2)
    assert Device.objects.get(fcm_token="tok-quota").push_enabled  # a busy FCM is not the device's fault


@pytest.mark.parametrize("reply", [fcm_stub.unavailable, fcm_stub.internal])
def test_5xx_retries_with_exponential_backoff(fcm, commit, reply):
    user = make_user(("ios", "tok-5xx"))
    fcm.script("tok-5xx", reply(), reply())
    start = clock.now()
    with clock.frozen_at(start):
        notification = reload(commit(user))
    first_wait = notification.push_next_attempt_at - start
    assert notification.push_state == State.FAILED
    assert dt.timedelta(seconds=30) <= first_wait <= dt.timedelta(seconds=33)
    with clock.frozen_at(start + first_wait):
        services.sweep_pending_pushes()
    second = reload(notification)
    assert second.push_state == State.FAILED and second.push_attempts == 2
    assert dt.timedelta(seconds=60) <= second.push_next_attempt_at - (start + first_wait) <= dt.timedelta(seconds=66)
    with clock.frozen_at(second.push_next_attempt_at):
        services.sweep_pending_pushes()
    assert reload(notification).push_state == State.SENT
    assert fcm.attempts_to("tok-5xx") == 3 and len(fcm.delivered_to("tok-5xx")) == 1


def test_retry_after_as_an_http_date_is_honoured(fcm, commit):
    user = make_user(("android", "tok-date"))
    fcm.script("tok-date", fcm_stub.unavailable(retry_after=email.utils.formatdate(time.time() + 600, usegmt=True)))
    start = clock.now()
    with clock.frozen_at(start):
        notification = reload(commit(user))
    wait = (notification.push_next_attempt_at - start).total_seconds()
    assert 590 <= wait <= 601


def test_gives_up_after_max_attempts(fcm, commit, settings):
    settings.PUSH = {**settings.PUSH, "MAX_ATTEMPTS": 2}
    user = make_user(("android", "tok-down"))
    fcm.script("tok-down", fcm_stub.unavailable(), fcm_stub.unavailable(), fcm_stub.unavailable())
    notification = reload(commit(user))
    with clock.frozen_at(notification.push_next_attempt_at):
        services.sweep_pending_pushes()
    notification = reload(notification)
    assert notification.push_state == State.DEAD and notification.push_attempts == 2
    assert notification.push_reason.startswith("gave up after 2 attempts")
    with clock.shifted(dt.timedelta(days=1)):
        assert services.sweep_pending_pushes() == {}
    assert fcm.attempts_to("tok-down") == 2

    # FCM is back: operations push it again from the admin.
    fcm.reset()
    assert services.retry_push(notification_id=notification.pk) is True
    assert services.sweep_pending_pushes() == {"sent": 1}
    assert len(fcm.delivered_to("tok-down")) == 1
    assert services.retry_push(notification_id=notification.pk) is False  # only failed or dead rows


def test_any_other_error_fails_with_its_reason_and_keeps_the_device(fcm, commit):
    user = make_user(("android", "tok-badpayload"))
    fcm.script("tok-badpayload", fcm_stub.bad_payload())
    notification = reload(commit(user))
    assert notification.push_state == State.FAILED
    assert notification.push_next_attempt_at is None
    assert notification.push_reason.startswith("device ") and "INVALID_ARGUMENT" in notification.push_reason
    device = Device.objects.get(user=user)
    assert (device.push_enabled, device.fcm_token) == (True, "tok-badpayload")
    with clock.shifted(dt.timedelta(hours=2)):
        assert services.sweep_pending_pushes() == {}  # not retried: the same request would fail again
    assert fcm.attempts_to("tok-badpayload") == 1


def test_fcm_unreachable_is_retried(fcm, commit, settings):
    import socket

    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    settings.FCM_ENDPOINT = f"http://127.0.0.1:{dead_port}"
    user = make_user(("android", "tok-offline"))
    notification = reload(commit(user))
    assert notification.push_state == State.FAILED and notification.push_next_attempt_at is not None
    assert "NETWORK" in notification.push_reason
    settings.FCM_ENDPOINT = fcm.base_url
    with clock.frozen_at(notification.push_next_attempt_at):
        services.sweep_pending_pushes()
    assert reload(notification).push_state == State.SENT and len(fcm.delivered_to("tok-offline")) == 1


def test_pushing_to_the_stub_never_looks_up_a_host_off_the_machine(fcm, monkeypatch, tmp_path):
    """Against a stub on loopback, neither the send nor google-auth's background work after a token refresh
    (its Regional Access Boundary lookup goes to iamcredentials.googleapis.com) resolves another host."""
    import socket
    import threading

    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        looked_up.append(name)
        if name not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"test refused a lookup of {name!r}: nothing leaves 127.0.0.1")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    before = set(threading.enumerate())
    backend = push.FirebasePushBackend(credentials_path=fcm.credentials_path, endpoint=fcm.base_url)
    try:
        target = push.PushTarget(device_id=1, platform="android", kind="token", value="tok-loopback")
        [result] = backend.send(push.PushContent(title="t", body="b", data={"k": "v"}), [target])
        for thread in set(threading.enumerate()) - before:  # e.g. google-auth's background lookup
            thread.join(10)
    finally:
        backend.close()
    assert result.outcome == push.Outcome.DELIVERED
    assert fcm.delivered_to("tok-loopback") and fcm.token_requests >= 1
    assert looked_up and set(looked_up) <= {"127.0.0.1", "localhost", "::1"}, looked_up


def test_a_stub_endpoint_with_a_token_uri_off_the_machine_is_refused(fcm, tmp_path):
    import json

    from django.core.exceptions import ImproperlyConfigured

    info = json.loads(open(fcm.credentials_path, encoding="utf-8").read())
    info["token_uri"] = "https://oauth2.googleapis.com/token"
    path = tmp_path / "google-token-uri.json"
    path.write_text(json.dumps(info))
    with pytest.raises(ImproperlyConfigured, match="token_uri"):
        push.FirebasePushBackend(credentials_path=str(path), endpoint=fcm.base_url)
