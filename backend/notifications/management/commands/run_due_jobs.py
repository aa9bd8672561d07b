"""Run every registered periodic job once, as of the movable clock: `manage.py run_due_jobs --at 2026-12-01T09:00`."""

from __future__ import annotations

import datetime as dt
import re

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backend.core import clock
from backend.notifications import schedule

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise CommandError(f"--advance takes a duration like 90s, 15m, 2h or 3d, not {text!r}")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--at takes an ISO 8601 date-time, not {text!r}") from exc
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = "Run every registered periodic job (or --job NAME) once, in this process, as of core.clock."

    def add_arguments(self, parser):
        parser.add_argument("--at", help="Run as of this moment (ISO 8601; local time zone if none is given).")
        parser.add_argument("--advance", help="Run as of now plus a duration, e.g. 3d.")
        parser.add_argument("--job", action="append", dest="jobs", help="Only this job (repeatable).")
        parser.add_argument("--list", action="store_true", help="List the registered jobs and exit.")

    def handle(self, *args, at=None, advance=None, jobs=None, list=False, **options):
        if list:
            schedule.import_task_modules()
            for job in schedule.periodic_jobs():
                every = f"every {job.seconds:g}s" if job.seconds else str(job.crontab)
                self.stdout.write(f"{job.name}\t{job.task}\t{every}")
            return
        if at and advance:
            raise CommandError("give --at or --advance, not both")
        moment = parse_moment(at) if at else clock.now() + (parse_duration(advance) if advance else dt.timedelta(0))
        with clock.frozen_at(moment):
            try:
                runs = schedule.run_due_jobs(jobs)
            except KeyError as exc:
                raise CommandError(str(exc.args[0])) from exc
        self.stdout.write(f"as of {moment.isoformat()}")
        for run in runs:
            if run.ok:
                self.stdout.write(f"ok      {run.name}: {run.result!r}")
            else:
                self.stdout.write(f"FAILED  {run.name}: {run.error}")
        failed = [run.name for run in runs if not run.ok]
        if failed:
            raise CommandError(f"{len(failed)} job(s) failed: {', '.join(failed)}")
