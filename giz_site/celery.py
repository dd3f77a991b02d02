"""The Celery app: settings come from Django's CELERY_* settings, tasks from each app's tasks.py."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giz_site.settings.local")

app = Celery("giz_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _warm_up_ensemble(**kwargs):
    """Each worker process loads and warms the active ensemble once, before its first task."""
    # Imported here: the Celery app is created before Django's apps are loaded.
    from inference.ensemble import warm_up

    warm_up()
