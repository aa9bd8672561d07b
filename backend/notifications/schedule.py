"""The registry of periodic jobs: every app's schedules in one place, feeding Celery beat.

Apps call `register_periodic(...)` from their AppConfig.ready() or tasks module (transfer refunds, red-packet
expiry, loan due/overdue scans, referral holding periods, the push sweep). Each entry lands in Celery's
`beat_schedule`, and `manage.py run_due_jobs` runs them all once, in-process, as of `core.clock` — for
tests and for operations ("run due jobs as of a date"). Jobs must be idempotent: beat may fire one twice
(a restart, two beats by mistake) and run_due_jobs may run next to beat.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps

from backend.celery import app as celery_app

log = logging.getLogger("quanzi.schedule")


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task: str
    seconds: float | None = None
    crontab: Any = None
    kwargs: dict = field(default_factory=dict)
    args: tuple = ()

    def beat_entry(self) -> dict:
        schedule = self.crontab if self.crontab is not None else dt.timedelta(seconds=self.seconds)
        options = {"expires": self.seconds} if self.seconds else {}  # a stale tick is dropped, not queued up
        return {"task": self.task, "schedule": schedule, "kwargs": dict(self.kwargs), "options": options}


_jobs: dict[str, PeriodicJob] = {}


def register_periodic(
    name: str, task: Any, seconds: float | None = None, *, crontab: Any = None, kwargs: dict | None = None
) -> PeriodicJob:
    """Run `task` (a Celery task or its registered name) every `seconds`, or on a `celery.schedules.crontab`.

    Registering the same job again is a no-op; registering a different job under a taken name is a bug.
    """
    task_name = task if isinstance(task, str) else getattr(task, "name", None)
    if not name or not task_name:
        raise ValueError("a periodic job needs a name and a Celery task (or task name)")
    if (seconds is None) == (crontab is None):
        raise ValueError(f"periodic job {name!r}: give exactly one of seconds or crontab")
    if seconds is not None and seconds < 1:
        raise ValueError(f"periodic job {name!r}: run at most once a second")
    job = PeriodicJob(name=name, task=task_name, seconds=seconds, crontab=crontab, kwargs=dict(kwargs or {}))
    existing = _jobs.get(name)
    if existing is not None and existing != job:
        raise ValueError(f"periodic job {name!r} is already registered as {existing}")
    _jobs[name] = job
    celery_app.conf.beat_schedule[name] = job.beat_entry()
    return job


def unregister_periodic(name: str) -> None:
    _jobs.pop(name, None)
    celery_app.conf.beat_schedule.pop(name, None)


def periodic_jobs() -> list[PeriodicJob]:
    """Registered jobs, plus any entry an app put straight into CELERY_BEAT_SCHEDULE (so none is missed)."""
    jobs = dict(_jobs)
    for name, entry in (celery_app.conf.beat_schedule or {}).items():
        if name not in jobs and isinstance(entry, dict) and entry.get("task"):
            jobs[name] = _job_from_entry(name, entry)
    return sorted(jobs.values(), key=lambda job: job.name)


def _job_from_entry(name: str, entry: dict) -> PeriodicJob:
    every = entry.get("schedule")
    seconds = crontab = None
    if isinstance(every, int | float):
        seconds = float(every)
    elif isinstance(every, dt.timedelta):
        seconds = every.total_seconds()
    elif hasattr(every, "run_every") and not hasattr(every, "minute"):
        seconds = every.run_every.total_seconds()
    else:
        crontab = every
    return PeriodicJob(name=name, task=entry["task"], seconds=seconds, crontab=crontab,
                       kwargs=dict(entry.get("kwargs") or {}), args=tuple(entry.get("args") or ()))


def import_task_modules() -> None:
    """Import every installed app's tasks module, as a worker would, so their registrations run."""
    for config in apps.get_app_configs():
        module = f"{config.name}.tasks"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


@dataclass(frozen=True)
class JobRun:
    name: str
    ok: bool
    result: Any = None
    error: str = ""


def run_due_jobs(names: list[str] | None = None) -> list[JobRun]:
    """Run every registered job (or the named ones) once, here and now, as of `core.clock`.

    A failing job is reported and the others still run.
    """
    import_task_modules()
    selected = periodic_jobs()
    if names:
        unknown = set(names) - {job.name for job in selected}
        if unknown:
            raise KeyError(f"no periodic job named {', '.join(sorted(unknown))}")
        selected = [job for job in selected if job.name in names]
    runs = []
    for job in selected:
        task = celery_app.tasks.get(job.task)
        if task is None:
            runs.append(JobRun(job.name, ok=False, error=f"task {job.task!r} is not registered with Celery"))
            continue
        outcome = task.apply(args=job.args, kwargs=job.kwargs, throw=False)
        if outcome.failed():
            log.error("periodic job %s failed: %r", job.name, outcome.result)
            runs.append(JobRun(job.name, ok=False, error=repr(outcome.result)))
        else:
            runs.append(JobRun(job.name, ok=True, result=outcome.result))
    return runs
