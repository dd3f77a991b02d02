"""The Celery app: settings come from Django's CELERY_* settings, tasks from each app's tasks.py."""

import logging
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giz_site.settings.local")

logger = logging.getLogger(__name__)

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
    """A worker starting under a node name re-queues the training runs and the fetches still recorded as held
    under it.

    Its previous incarnation died with them (a SIGKILL, the OOM killer, a lost container restarted by its
    supervisor), so they are re-queued at once instead of after the heartbeat or lease goes stale and the next beat
    backstop (GIZ_TRAINING_STALE_S or GIZ_ACQUIRE_FETCH_STALE_S, plus up to a minute). The signal comes before the
    worker takes its first task. A failure is logged and leaves that work to the backstops.
    """
    # Imported here: the Celery app is created before Django's apps are loaded.
    from django.db import connection

    from acquisition.tasks import requeue_orphaned as fetches_requeue_orphaned
    from inference.services import training_runs_requeue_orphaned

    for requeue in (training_runs_requeue_orphaned, fetches_requeue_orphaned):
        try:
            requeue(worker=sender.hostname)
        except Exception:
            logger.exception("%s: %s failed; the beat backstops will find that work", sender.hostname, requeue.__name__)
    # The main process of a prefork worker runs no task: no connection kept open for one (a test calling this
    # inside its transaction keeps it).
    if not connection.in_atomic_block:
        connection.close()
