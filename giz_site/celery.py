"""The Celery app: settings come from Django's CELERY_* settings, tasks from each app's tasks.py."""

import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

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


@worker_ready.connect
def _requeue_what_the_previous_incarnation_left(sender, **kwargs):
    """A worker starting under a node name re-queues the training runs still recorded as running under it.

    Its previous incarnation died with them (a SIGKILL, the OOM killer, a lost container restarted by its
    supervisor), so they are re-queued at once instead of after the heartbeat goes stale (GIZ_TRAINING_STALE_S plus
    up to a minute of beat). The signal comes before the worker takes its first task; an error is logged by Celery
    and leaves the beat backstop to do it.
    """
    from django.db import connection

    from inference.services import training_runs_requeue_orphaned

    try:
        training_runs_requeue_orphaned(worker=sender.hostname)
    finally:
        connection.close()  # the main process of a prefork worker runs no task: no connection kept open for one
