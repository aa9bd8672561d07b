"""The Celery app. Without REDIS_URL tasks run eagerly in-process (the embedded default).

Periodic jobs: apps register them with `backend.notifications.schedule.register_periodic(name, task, seconds)`
from their AppConfig.ready() or tasks module; each registration lands in `app.conf.beat_schedule`. Beat
(`celery -A backend beat`) imports every app (Django setup runs the ready() hooks, autodiscovery imports the
tasks modules) before it builds its schedule, so every registered job is scheduled.
`manage.py run_due_jobs` runs the same jobs once, in-process, as of core.clock.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")

app = Celery("quanzi")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
