"""Celery tasks of the inference area: thin, taking ids; the work is in inference.services."""

import logging

from celery import shared_task
from django.conf import settings

from giz_site.exceptions import ApplicationError
from inference import catalog_services, imaging, selectors, services, table_jobs
from labeling.models import Galaxy

logger = logging.getLogger(__name__)

# Time limits (s): the soft one raises SoftTimeLimitExceeded in the task, which records the failure; the hard one
# kills a task stuck where no exception reaches (a C call). Backstops stay under their beat period.


@shared_task(name="inference.tasks.predict_galaxy_task", ignore_result=True, soft_time_limit=120, time_limit=180)
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


@shared_task(name="inference.tasks.predict_missing", ignore_result=True, soft_time_limit=240, time_limit=290)
def predict_missing() -> int:
    """Beat backstop: predict galaxies with a colour image but no prediction (an announcement lost on the way)."""
    galaxy_ids = selectors.galaxies_without_prediction(limit=settings.GIZ_INFERENCE_BATCH_SIZE)
    if not galaxy_ids:
        return 0
    try:
        outcomes = services.predict_galaxies(galaxies=list(Galaxy.objects.filter(pk__in=galaxy_ids)))
    except ApplicationError as exc:  # no active model yet: nothing to do until there is one
        logger.warning("predict_missing: %s", exc.message)
        return 0
    failed = [outcome for outcome in outcomes if not isinstance(outcome, services.EnsembleResult)]
    if failed:
        logger.warning("predict_missing: %s of %s galaxies could not be predicted", len(failed), len(outcomes))
    return len(outcomes) - len(failed)


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


# acks_late (settings) puts a killed worker's training back on the queue; the run then starts clean.
@shared_task(name="inference.tasks.train_task", ignore_result=True, soft_time_limit=4 * 3600, time_limit=4 * 3600 + 600)
def train_task(run_id: int) -> None:
    services.training_run_execute(run_id=run_id)


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
