"""Celery tasks of the inference area: thin, taking ids; the work is in inference.services."""

import logging

from celery import shared_task

from giz_site.exceptions import ApplicationError
from inference import imaging, services, table_jobs
from labeling.models import Galaxy

logger = logging.getLogger(__name__)


@shared_task(name="inference.tasks.predict_galaxy_task", ignore_result=True)
def predict_galaxy_task(galaxy_id: int) -> str:
    """Predict a newly acquired galaxy with the active ensemble (raises alarms, refreshes its priority)."""
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


@shared_task(name="inference.tasks.inference_job_task", ignore_result=True)
def inference_job_task(job_id: int) -> None:
    """Bulk prediction of a job's galaxies in batches, with progress on the job row (resumable)."""
    services.inference_job_run(job_id=job_id)


@shared_task(name="inference.tasks.table_job_task", ignore_result=True)
def table_job_task(job_id: int) -> None:
    """A batch job from an uploaded table: resolve its rows to galaxies, then predict (resumable)."""
    table_jobs.table_job_run(job_id=job_id)


# acks_late (settings) puts a killed worker's training back on the queue; the run then starts clean.
@shared_task(name="inference.tasks.train_task", ignore_result=True)
def train_task(run_id: int) -> None:
    services.training_run_execute(run_id=run_id)


@shared_task(name="inference.tasks.training_backstop_task", ignore_result=True)
def training_backstop_task() -> None:
    """Beat backstop: re-queue a killed run, or start one if enough new labels are waiting."""
    services.training_backstop()


@shared_task(name="inference.tasks.alarm_email_task", ignore_result=True)
def alarm_email_task(alarm_id: int) -> None:
    services.alarm_email_send(alarm_id=alarm_id)
