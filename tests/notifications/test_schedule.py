"""Periodic jobs: what other apps register lands in Celery beat, and run_due_jobs runs them as of the clock."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from celery import shared_task
from celery.beat import Scheduler
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from backend.celery import app as celery_app
from backend.core import clock
from backend.notifications import push, schedule

RUNS: list[dt.datetime] = []


@shared_task(name="tests.notifications.record_run")
def record_run(label: str = "") -> str:
    RUNS.append(clock.now())
    return f"ran {label}"


@shared_task(name="tests.notifications.broken_job")
def broken_job() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def jobs():
    RUNS.clear()
    names = []

    def _register(name, *args, **kwargs):
        names.append(name)
        return schedule.register_periodic(name, *args, **kwargs)

    yield _register
    for name in names:
        schedule.unregister_periodic(name)


def _fresh_scheduler():
    scheduler = Scheduler(app=celery_app, lazy=True)
    scheduler.setup_schedule()
    return scheduler


def test_the_push_sweep_and_registered_jobs_are_in_the_beat_schedule(jobs):
    jobs("wallet.expire_red_packets", record_run, 60, kwargs={"label": "red packets"})
    jobs("loans.scan_overdue", "tests.notifications.record_run", crontab=crontab(minute=5, hour=2))
    entries = _fresh_scheduler().schedule
    assert entries["notifications.sweep_pushes"].task == "notifications.sweep_pushes"
    assert entries["notifications.sweep_pushes"].schedule.run_every == dt.timedelta(seconds=30)
    assert entries["wallet.expire_red_packets"].task == "tests.notifications.record_run"
    assert entries["wallet.expire_red_packets"].kwargs == {"label": "red packets"}
    assert entries["wallet.expire_red_packets"].options["expires"] == 60
    assert entries["loans.scan_overdue"].schedule == crontab(minute=5, hour=2)


def test_registration_mistakes_are_refused(jobs):
    jobs("referrals.release_holds", record_run, 300)
    jobs("referrals.release_holds", record_run, 300)  # the same again (a module imported twice) is fine
    with pytest.raises(ValueError, match="already registered"):
        jobs("referrals.release_holds", broken_job, 300)
    with pytest.raises(ValueError, match="exactly one"):
        jobs("x.no_schedule", record_run)
    with pytest.raises(ValueError, match="once a second"):
        jobs("x.too_often", record_run, 0.1)


@pytest.mark.django_db
def test_run_due_jobs_runs_every_job_once_as_of_the_given_time(jobs, capsys):
    jobs("wallet.refund_unclaimed_transfers", record_run, 60, kwargs={"label": "refunds"})
    mine = ["wallet.refund_unclaimed_transfers", "notifications.sweep_pushes"]  # other apps' real jobs stay out
    call_command("run_due_jobs", at="2026-12-01T09:00:00+08:00", job=mine)
    assert RUNS == [dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)]
    out = capsys.readouterr().out
    assert "ok      wallet.refund_unclaimed_transfers: 'ran refunds'" in out
    assert "ok      notifications.sweep_pushes: {}" in out

    before = clock.now()
    call_command("run_due_jobs", advance="3d", job=["wallet.refund_unclaimed_transfers"])
    assert RUNS[1] - before >= dt.timedelta(days=3)
    assert clock.now() - before < dt.timedelta(days=1)  # the clock is back where it was


@pytest.mark.django_db
def test_a_failing_job_is_reported_and_the_others_still_run(jobs, capsys):
    jobs("a.broken", broken_job, 60)
    jobs("b.fine", record_run, 60)
    with pytest.raises(CommandError, match="1 job"):
        call_command("run_due_jobs", job=["a.broken", "b.fine"])
    assert len(RUNS) == 1
    assert "FAILED  a.broken: RuntimeError('boom')" in capsys.readouterr().out


@pytest.mark.django_db
def test_jobs_put_straight_into_the_beat_schedule_are_run_too(jobs, capsys):
    celery_app.conf.beat_schedule["circles.legacy_entry"] = {
        "task": "tests.notifications.record_run", "schedule": 120.0, "args": ("legacy",)}
    try:
        listed = {job.name: job for job in schedule.periodic_jobs()}
        assert listed["circles.legacy_entry"].seconds == 120.0
        call_command("run_due_jobs", job=["circles.legacy_entry"])
    finally:
        celery_app.conf.beat_schedule.pop("circles.legacy_entry")
    assert len(RUNS) == 1 and "'ran legacy'" in capsys.readouterr().out


def test_run_due_jobs_rejects_bad_arguments(jobs):
    for kwargs, message in (({"advance": "soon"}, "duration"), ({"at": "yesterday"}, "ISO 8601"),
                            ({"job": ["no.such_job"]}, "no periodic job"),
                            ({"at": "2026-01-01T00:00", "advance": "1d"}, "not both")):
        with pytest.raises(CommandError, match=message):
            call_command("run_due_jobs", **kwargs)
    assert RUNS == []


def test_start_up_says_where_pushes_go(settings, caplog, tmp_path, _fcm_server):
    settings.FCM_CREDENTIALS = ""
    with caplog.at_level(logging.INFO, logger="quanzi.push"):
        push.announce()
    assert "FCM_CREDENTIALS is not set: pushes are written to the log, not sent" in caplog.text
    caplog.clear()
    settings.FCM_CREDENTIALS = _fcm_server.credentials_path
    with caplog.at_level(logging.INFO, logger="quanzi.push"):
        push.announce()
    assert "push: FCM through firebase-admin" in caplog.text
    settings.FCM_CREDENTIALS = str(tmp_path / "missing.json")
    with pytest.raises(ImproperlyConfigured, match="unreadable"):
        push.announce()
    (tmp_path / "not-sa.json").write_text('{"type": "authorized_user"}')
    settings.FCM_CREDENTIALS = str(tmp_path / "not-sa.json")
    with pytest.raises(ImproperlyConfigured, match="service-account"):
        push.announce()


@pytest.mark.django_db
def test_without_credentials_pushes_are_logged_not_sent(settings, caplog, django_capture_on_commit_callbacks):
    from backend.notifications import services
    from backend.notifications.models import Notification

    from .conftest import make_user

    settings.FCM_CREDENTIALS = ""
    user = make_user(("android", "tok-logged"))
    with caplog.at_level(logging.INFO, logger="quanzi.push"), django_capture_on_commit_callbacks(execute=True):
        row = services.notify(recipient_id=user.pk, kind="money", event="wallet.x", title="¥88 from Ada",
                              body="secret text", payload={"transfer_id": "T1", "amount_fen": 8800})
    row = Notification.objects.get(pk=row.pk)
    assert (row.push_state, row.push_reason) == ("sent", "logged only: no FCM_CREDENTIALS")
    [line] = [r.getMessage() for r in caplog.records if r.name == "quanzi.push"]
    assert line.startswith("push not sent (no FCM_CREDENTIALS)") and "payload_transfer_id=T1" in line
    assert "8800" not in line and "¥88" not in line and "secret" not in line and "Ada" not in line
