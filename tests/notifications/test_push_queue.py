"""With a real broker (tasks not eager), committed push rows reach Celery through the process's push queue: one
message carries the rows of several transactions, nothing goes out before commit or for a rolled-back one,
a failed send does not stop later ones, and a process that exits right after committing still enqueues."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from backend.celery import app as celery_app
from backend.notifications import services, tasks
from backend.notifications.pushqueue import PushQueue

from .conftest import make_user, subprocess_env

ROOT = Path(__file__).resolve().parents[2]


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def sent(monkeypatch):
    """Tasks go to a broker (not eager); each `deliver_pushes` message's ids are recorded instead of sent."""
    messages: list[list[int]] = []
    monkeypatch.setattr(tasks.deliver_pushes, "delay", lambda ids: messages.append(list(ids)))
    celery_app.conf.task_always_eager = False  # the autouse eager_tasks fixture restores it
    return messages


@pytest.mark.django_db(transaction=True)
def test_the_rows_of_several_transactions_go_out_in_one_message_after_commit(sent, monkeypatch):
    queue = PushQueue(services._send_pushes, linger=1.0, batch=services.PUSH_TASK_BATCH)
    monkeypatch.setattr(services, "_PUSH_QUEUE", queue)
    ada, bob = make_user(), make_user()
    committed = []
    for n in range(3):  # three transfers' alerts, committed one after another
        with transaction.atomic():
            rows = services.notify_many([
                dict(recipient_id=ada.pk, kind="money", event="wallet.x", title=f"a{n}"),
                dict(recipient_id=bob.pk, kind="money", event="wallet.x", title=f"b{n}"),
            ])
            assert sent == [] and queue._ids == committed  # nothing of this one before COMMIT
        committed += [r.pk for r in rows]
    with pytest.raises(RuntimeError), transaction.atomic():
        services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="rolled back")
        raise RuntimeError("the transfer failed")
    wait_until(lambda: sent)
    assert sent == [committed]


def test_a_full_batch_goes_at_once_and_a_big_one_is_split():
    got: list[list[int]] = []
    queue = PushQueue(got.append, linger=30.0, batch=50)
    queue.add(list(range(120)))
    wait_until(lambda: sum(map(len, got)) == 120)  # long before the linger ends
    assert got == [list(range(50)), list(range(50, 100)), list(range(100, 120))]


def test_a_failed_send_is_logged_and_later_ids_still_go_out(caplog):
    got: list[list[int]] = []
    failures = iter([RuntimeError("broker down")])

    def send(ids):
        for failure in failures:
            raise failure
        got.append(ids)

    queue = PushQueue(send, linger=0.01, batch=50)
    queue.add([1, 2])
    wait_until(lambda: "not enqueued" in caplog.text)
    assert "[1, 2]" in caplog.text  # the sweep delivers those rows later
    queue.add([3])
    wait_until(lambda: got)
    assert got == [[3]]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_an_empty_queue_of_its_own():
    """Pre-fork servers and Celery's prefork pool: what the parent queued is the parent's to send."""
    got: list[list[int]] = []
    queue = PushQueue(got.append, linger=30.0, batch=50)
    os.register_at_fork(after_in_child=queue._reset)
    queue.add([1, 2])  # still lingering in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it would send, then leave without running any test machinery
        try:
            queue.flush()  # nothing of the parent's
            child_got = list(got)
            done = threading.Event()
            child_queue_send = queue.send
            queue.send = lambda ids: (child_queue_send(ids), done.set())
            queue.linger = 0.01
            queue.add([3])
            done.wait(5)
            os.write(write, json.dumps([child_got, got]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read() or "null")
    os.waitpid(pid, 0)
    assert report == [[], [[3]]]
    queue.flush()
    assert got == [[1, 2]]  # the parent still sends its own


EXIT_RIGHT_AFTER_COMMIT = textwrap.dedent("""
    import sys
    import django
    django.setup()
    from django.db import transaction
    from backend.notifications.services import notify

    with transaction.atomic():
        row = notify(recipient_id=int(sys.argv[1]), kind="money", event="wallet.x", title="t")
    print(row.pk, flush=True)
    sys.exit(0)  # at once: the push queue is still lingering
""")


@pytest.mark.django_db(transaction=True)
def test_a_process_that_exits_right_after_commit_still_enqueues(require_redis):
    import redis

    user = make_user()
    broker = redis.Redis.from_url(settings.REDIS_URL)
    before = broker.llen("celery")
    child = subprocess.run([sys.executable, "-c", EXIT_RIGHT_AFTER_COMMIT, str(user.pk)], cwd=ROOT,
                           env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    row_id = int(child.stdout.split()[0])
    found = []
    for raw in broker.lrange("celery", 0, broker.llen("celery") - before - 1):
        message = json.loads(raw)
        if message["headers"]["task"] == "notifications.deliver_pushes":
            args = json.loads(base64.b64decode(message["body"]))[0]
            if args == [[row_id]]:
                found.append(raw)
    for raw in found:  # leave the broker as it was (no worker is meant to find this)
        broker.lrem("celery", 1, raw)
    assert len(found) == 1
