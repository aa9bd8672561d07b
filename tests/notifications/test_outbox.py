"""The outbox: rows live and die with the caller's transaction, and every row is pushed exactly once —
even when the process dies between commit and enqueue, and when the task and the sweep race."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from backend.celery import app as celery_app
from backend.core import clock
from backend.notifications import services, tasks
from backend.notifications.models import Notification
from tests.conftest import race

from .conftest import make_user, reload, subprocess_env

State = Notification.PushState
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_caller_leaves_no_row_and_no_push(fcm):
    user = make_user(("android", "tok-rollback"))
    with pytest.raises(RuntimeError), transaction.atomic():
        services.notify(recipient_id=user.pk, kind="money", event="wallet.x", title="t")
        raise RuntimeError("the transfer failed")
    assert not Notification.objects.exists()
    assert fcm.messages == []


KILL_BETWEEN_COMMIT_AND_ENQUEUE = textwrap.dedent("""
    import os, signal, sys
    import django
    django.setup()
    from django.db import transaction
    from backend.notifications.services import notify

    with transaction.atomic():
        # Registered first, so it runs first after COMMIT: the process dies before notify's enqueue hook.
        transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        row = notify(recipient_id=int(sys.argv[1]), kind="money", event="wallet.transfer_received",
                     title="Ada sent you 50.00", payload={"transfer_id": "VHJhbnNmZXI6OQ=="})
        print(row.pk, flush=True)
""")


def _broker_queue_length() -> int | None:
    if not settings.REDIS_URL:
        return None
    import redis

    return redis.Redis.from_url(settings.REDIS_URL).llen("celery")


@pytest.mark.django_db(transaction=True)
def test_process_killed_between_commit_and_enqueue_then_the_sweep_delivers_exactly_once(fcm):
    user = make_user(("android", "tok-killed"))
    child = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_COMMIT_AND_ENQUEUE, str(user.pk)],
        cwd=ROOT, env=subprocess_env(FCM_CREDENTIALS=fcm.credentials_path, FCM_ENDPOINT=fcm.base_url),
        capture_output=True, text=True, timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    row = Notification.objects.get(pk=int(child.stdout.split()[0]))
    assert row.push_state == State.PENDING  # committed...
    assert fcm.messages == []  # ...never pushed...
    assert _broker_queue_length() in (None, 0)  # ...and never enqueued

    sweep = ["notifications.sweep_pushes"]
    call_command("run_due_jobs", advance="60s", job=sweep)  # the sweep finds it
    call_command("run_due_jobs", advance="120s", job=sweep)  # running it again sends nothing twice
    tasks.deliver_push(row.pk)  # nor does a late after-commit task, had one been queued
    assert len(fcm.delivered_to("tok-killed")) == 1
    assert reload(row).push_state == State.SENT and row.push_attempts == 1


@pytest.mark.django_db
def test_sweep_leaves_young_rows_to_their_task_but_picks_up_old_ones(fcm):
    user = make_user(("android", "tok-young"))
    with transaction.atomic():  # on_commit hooks are not run here: the enqueue is "lost"
        row = services.notify(recipient_id=user.pk, kind="loan", event="loans.due", title="t")
    assert services.sweep_pending_pushes() == {}
    with clock.shifted(dt.timedelta(seconds=settings.PUSH["SWEEP_GRACE_SECONDS"] + 1)):
        assert services.sweep_pending_pushes() == {"sent": 1}
    assert reload(row).push_state == State.SENT


@pytest.mark.django_db(transaction=True)
def test_task_and_sweep_racing_send_once(fcm):
    user = make_user(("android", "tok-race"))
    # A committed pending row (written directly: no after-commit task of its own in this test).
    row_id = Notification.objects.create(recipient=user, kind="money", event="wallet.x", title="t").pk
    fcm.delay = 0.2  # a slow FCM widens the window for a double send
    results = race(lambda: services.deliver_push(notification_id=row_id).state, 4)
    assert sorted(results) == ["not_claimed", "not_claimed", "not_claimed", "sent"]
    assert len(fcm.messages) == 1


@pytest.mark.django_db
def test_a_claim_abandoned_by_a_dead_worker_is_taken_over_after_the_lease(fcm):
    user = make_user(("android", "tok-lease"))
    with transaction.atomic():
        row = services.notify(recipient_id=user.pk, kind="money", event="wallet.x", title="t")
    start = clock.now()
    Notification.objects.filter(pk=row.pk).update(push_state=State.SENDING, push_claimed_at=start)
    with clock.frozen_at(start + dt.timedelta(seconds=60)):
        assert services.sweep_pending_pushes() == {}  # someone is still on it
    with clock.frozen_at(start + dt.timedelta(seconds=settings.PUSH["CLAIM_LEASE_SECONDS"] + 1)):
        assert services.sweep_pending_pushes() == {"sent": 1}
    assert len(fcm.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_after_commit_task_goes_through_redis_to_a_celery_worker(fcm, require_redis):
    """No eager shortcut: the commit enqueues on Redis, a real `celery worker` process sends via firebase-admin."""
    user = make_user(("android", "tok-worker"))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "backend", "worker", "--pool=solo", "--concurrency=1",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        cwd=ROOT, env=subprocess_env(FCM_CREDENTIALS=fcm.credentials_path, FCM_ENDPOINT=fcm.base_url),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    celery_app.conf.task_always_eager = False
    try:
        with transaction.atomic():
            row = services.notify(recipient_id=user.pk, kind="money", event="wallet.x", title="t")
        deadline = time.monotonic() + 30
        while not fcm.delivered_to("tok-worker") and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=20)[0]
    assert len(fcm.delivered_to("tok-worker")) == 1, output
    assert reload(row).push_state == State.SENT
