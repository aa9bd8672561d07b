"""A Celery worker killed (SIGKILL) while it is sending a push.

A real `celery worker` (solo pool) on our own redis-server as broker pushes through the real firebase-admin
library to the stub FCM server on loopback. The stub holds the send open; the worker is killed while FCM has
the request but before the worker recorded the outcome, so the row stays claimed (`sending`). Once the claim
lease passes, the sweep (run by a second real worker) claims it again and delivers it: the device gets it at
least once and at most once more (counted at the stub), and a further sweep sends nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time

import pytest
from celery import Celery

from backend.notifications import services as notifications
from backend.notifications.models import Notification
from tests.e2e.conftest import ROOT, node_env
from tests.notifications.conftest import _fcm_server, make_user  # noqa: F401  (the session's stub FCM)

from .conftest import own_redis_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LEASE_SECONDS = 3


def start_worker(env: dict, log_path) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "backend.celery", "worker", "--pool=solo", "--concurrency=1",
         "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_push_whose_worker_was_killed_is_delivered_by_the_sweep_at_most_once_more(
        own_redis, _fcm_server, monkeypatch, tmp_path):  # noqa: F811
    stub = _fcm_server
    stub.reset()
    env = node_env(own_redis_env(own_redis, CELERY_TASK_ALWAYS_EAGER="0", FCM_CREDENTIALS=stub.credentials_path,
                                 FCM_ENDPOINT=stub.base_url, PUSH_CLAIM_LEASE_SECONDS=str(LEASE_SECONDS)))
    env.pop("ALLOW_LOGGING_PUSH", None)
    ada = make_user(("android", "tok-ada-1"))
    monkeypatch.setattr(notifications, "_push_on_commit", lambda notification_id: None)  # enqueued by hand below
    row = notifications.notify(recipient_id=ada.pk, kind="money", event="wallet.balance_changed", title="到账",
                               body="¥12.34")
    # the stub holds the first send open until the worker is dead
    arrived, release, answered = threading.Event(), threading.Event(), threading.Event()
    original_send = stub._send

    def held_send(handler, raw):
        if arrived.is_set():
            original_send(handler, raw)
            return
        arrived.set()
        release.wait(30)
        try:
            original_send(handler, raw)
        finally:
            answered.set()

    monkeypatch.setattr(stub, "_send", held_send)
    client = Celery("faults-client", broker=own_redis.url(0), set_as_current=False)  # leave the app's tasks alone
    first = start_worker(env, tmp_path / "worker-1.log")
    try:
        client.send_task("notifications.deliver_push", args=[row.pk])
        assert arrived.wait(60), (tmp_path / "worker-1.log").read_text()[-3000:]
        first.kill()  # SIGKILL while FCM holds its request
        first.wait(10)
        killed_at = time.monotonic()
    finally:
        release.set()
        if first.poll() is None:
            first.kill()
    answered.wait(10)  # the stub has taken the held request (or failed to): what it counted below is final
    row.refresh_from_db()
    assert row.push_state == "sending"  # claimed by a worker that is gone; nobody recorded the outcome
    attempts_before_sweep = stub.attempts_to("tok-ada-1")  # FCM may well have accepted it: 0 or 1
    assert attempts_before_sweep <= 1
    second = start_worker(env, tmp_path / "worker-2.log")  # it boots while the claim's lease runs out
    worker_log = tmp_path / "worker-2.log"
    try:
        time.sleep(max(0.0, killed_at + LEASE_SECONDS + 0.5 - time.monotonic()))
        client.send_task("notifications.sweep_pushes")
        wait_for(lambda: Notification.objects.get(pk=row.pk).push_state == "sent", 60, "the sweep to push it")
        late = [client.send_task("notifications.sweep_pushes"),  # a second sweep finds nothing to do
                client.send_task("notifications.deliver_push", args=[row.pk])]  # nor does a late duplicate task
        # both have run (the worker logs each task's end), rather than a fixed wait that could end before they did
        wait_for(lambda: all(re.search(rf"\[{task.id}\] (succeeded|raised)", worker_log.read_text())
                             for task in late), 60, "the late sweep and the duplicate task to run")
    finally:
        second.terminate()
        second.wait(20)
    delivered = stub.delivered_to("tok-ada-1")
    # the one FCM accepted from the dying worker (if it got there), plus the sweep's: never a third
    assert 1 <= len(delivered) <= 2 and len(delivered) == attempts_before_sweep + 1, delivered
    assert all(m["data"].get("notification_id") == delivered[0]["data"].get("notification_id") for m in delivered)
    log = worker_log.read_text()
    assert "Traceback" not in log, log[-3000:]
    # nothing either worker did reached for a host off the machine (google-auth's IAM lookup once did)
    for path in (tmp_path / "worker-1.log", worker_log):
        text = path.read_text()
        assert "googleapis.com" not in text and "NameResolutionError" not in text, text[-3000:]
