"""Celery tasks of the inference area: thin, taking ids; the work is in inference.services."""

import logging
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from giz_site.exceptions import ApplicationError
from inference import catalog_services, imaging, selectors, services, table_jobs
from labeling.models import Galaxy

logger = logging.getLogger(__name__)

# Time limits (s): the soft one raises SoftTimeLimitExceeded in the task, which records the failure; the hard one
# kills a task stuck where no exception reaches (a C call). Backstops stay under their beat period.


@shared_task(name="inference.tasks.predict_galaxy_task", ignore_result=True, soft_time_limit=120, time_limit=180)
def predict_galaxy_task(galaxy_id: int) -> str:
    """Predict one galaxy with the active ensemble (raises alarms, refreshes its priority).

    New images go through predict_pending_task in batches; this stays for messages already queued and callers
    that name one galaxy.
    """
    galaxy = Galaxy.objects.filter(pk=galaxy_id).first()
    if galaxy is None:
        return "missing"
    try:
        services.predict_galaxy(galaxy=galaxy)
    except (ApplicationError, imaging.ImageError) as exc:
        # No image or no active model: nothing a retry fixes; the bulk job or backstop picks it up later.
        logger.warning("No prediction for %s: %s", galaxy, getattr(exc, "message", exc))
        return "skipped"
    return "ok"


PENDING_FLAG = "inference.predict_pending_task:queued"
PENDING_SOFT_S, PENDING_HARD_S = 150, 180


def predict_pending_queue(*, countdown: float) -> bool:
    """Queue a batch of the images waiting for a prediction, unless one is already on its way.

    The images of a burst (a job's fetches, a render) share one task: the first asks, the task waits `countdown`
    seconds for the rest, and the others find the flag set. cache.add is atomic in the shared cache; the flag also
    expires, so a lost message holds nudges back for a minute at most (predict_missing runs the marks anyway).
    """
    if not cache.add(PENDING_FLAG, True, timeout=countdown + 60):
        return False
    try:
        predict_pending_task.apply_async(countdown=countdown)
    except Exception:
        cache.delete(PENDING_FLAG)  # not sent: the next image stored asks again
        raise
    return True


@shared_task(
    name="inference.tasks.predict_pending_task",
    ignore_result=True,
    soft_time_limit=PENDING_SOFT_S,
    time_limit=PENDING_HARD_S,
)
def predict_pending_task() -> int:
    """Predict up to GIZ_INFERENCE_BATCH_SIZE newly stored images in one pass; queue the next batch if more wait."""
    cache.delete(PENDING_FLAG)  # an image stored from now on may come after this batch's claim: it asks again
    size = settings.GIZ_INFERENCE_BATCH_SIZE
    # The claim outlives this task's hard limit, so a batch is never taken twice while its task may still run.
    batch = services.predictions_pending_run(limit=size, lease_s=PENDING_HARD_S + 30)
    if batch.waiting:
        logger.warning("predict_pending_task: no active model; %s images wait", batch.claimed)
    elif batch.claimed == size:
        predict_pending_queue(countdown=0)
    return batch.predicted


@shared_task(name="inference.tasks.predict_missing", ignore_result=True, soft_time_limit=240, time_limit=290)
def predict_missing() -> int:
    """Beat backstop: predict images still waiting (a lost message, a killed batch) and galaxies never predicted."""
    size = settings.GIZ_INFERENCE_BATCH_SIZE
    services.predictions_missing_mark(galaxy_ids=selectors.galaxies_without_prediction(limit=size))
    predicted, started = 0, time.monotonic()
    while time.monotonic() - started < 120:  # room under the soft limit for one more batch
        batch = services.predictions_pending_run(limit=size, lease_s=290 + 30)
        predicted += batch.predicted
        if batch.waiting:
            logger.warning("predict_missing: no active model; %s images wait", batch.claimed)
        if batch.waiting or batch.claimed < size:
            break
    return predicted


# A job cut short by its limit keeps its results; queueing this task again for it continues where it stopped.
@shared_task(
    name="inference.tasks.inference_job_task", ignore_result=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300
)
def inference_job_task(job_id: int) -> None:
    """Bulk prediction of a job's galaxies in batches, with progress on the job row (resumable)."""
    services.inference_job_run(job_id=job_id)


@shared_task(
    name="inference.tasks.table_job_task", ignore_result=True, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 300
)
def table_job_task(job_id: int) -> None:
    """A batch job from an uploaded table: resolve its rows to galaxies, then predict (resumable)."""
    table_jobs.table_job_run(job_id=job_id)


# acks_late (settings) puts a killed worker's training back on the queue (Redis: after its visibility timeout); the
# run then starts clean. Sooner: the run records this worker's node name, and a worker that starts again under that
# name re-queues it at once (giz_site.celery); the beat backstop takes it once its heartbeat is stale.
@shared_task(
    bind=True,
    name="inference.tasks.train_task",
    ignore_result=True,
    soft_time_limit=4 * 3600,
    time_limit=4 * 3600 + 600,
)
def train_task(self, run_id: int) -> None:
    services.training_run_execute(run_id=run_id, worker=self.request.hostname or "")


@shared_task(name="inference.tasks.training_backstop_task", ignore_result=True, soft_time_limit=60, time_limit=120)
def training_backstop_task() -> None:
    """Beat backstop: re-queue a killed run or survey evaluation, or start a run if enough new labels are waiting."""
    services.survey_evaluations_backstop()
    services.training_backstop()


# 1,000 labels take well under a minute; the limits leave room for a survey with many more.
@shared_task(name="inference.tasks.survey_evaluate_task", ignore_result=True, soft_time_limit=1800, time_limit=1900)
def survey_evaluate_task(evaluation_id: int) -> None:
    """The active ensemble on one survey's consensus labels: figures, plot, and the needs-adaptation verdict."""
    services.survey_evaluation_run(evaluation_id=evaluation_id)


@shared_task(name="inference.tasks.alarm_email_task", ignore_result=True, soft_time_limit=60, time_limit=90)
def alarm_email_task(alarm_id: int) -> None:
    services.alarm_email_send(alarm_id=alarm_id)


# A 1M-galaxy export takes minutes; the limits leave room for a slow storage backend.
@shared_task(name="inference.tasks.catalog_export_run_task", acks_late=True, soft_time_limit=3600, time_limit=3900)
def catalog_export_run_task(export_id: int) -> str | None:
    """Write a queued catalogue export to storage (admin action or POST /api/catalog/exports/)."""
    export = catalog_services.catalog_export_run(export_id=export_id)
    return export.file.name if export else None
