"""Celery tasks of the acquisition area: thin, taking ids; the work is in acquisition.services."""

import logging

from celery import shared_task
from django.conf import settings

from acquisition import services
from acquisition.sdss import SdssError
from labeling.models import Galaxy

logger = logging.getLogger(__name__)

# Time limits (s): the soft one raises SoftTimeLimitExceeded in the task, which records the failure; the hard one
# kills a task stuck where no exception reaches (a C call). Backstops stay under their beat period.


# GIZ_SDSS_RATE_LIMIT is enforced by the process's SDSS client on every request (retries and FITS
# frames included), so N worker processes make at most N x the limit requests per second. Celery's
# task rate_limit is not used: it counts tasks, not requests, and its timer lags in a busy worker.
@shared_task(
    bind=True,
    name="acquisition.tasks.acquire_galaxy",
    max_retries=None,  # the limit is GIZ_SDSS_MAX_RETRIES, checked below so the reason gets recorded
    ignore_result=True,
    # One galaxy is a few requests: seconds. A slow fetch is retried, keeping what it stored. While the task runs
    # it renews the galaxy's lease (GIZ_ACQUIRE_FETCH_STALE_S), so the galaxy is never queued again meanwhile.
    soft_time_limit=40,
    time_limit=50,
)
def acquire_galaxy(self, galaxy_id: int, job_id: int | None = None) -> str:
    """Fetch and store a galaxy's images; retry transient failures, record permanent ones.

    The outcome counts in every job waiting for the galaxy; `job_id` is kept for tasks already queued with it.
    """
    galaxy = Galaxy.objects.filter(pk=galaxy_id).first()
    if galaxy is None:
        logger.warning("acquire_galaxy: galaxy %s no longer exists", galaxy_id)
        return "missing"
    attempt = self.request.retries + 1
    try:
        # The lease ends with the block, before a retry's longer one is set below.
        with services.galaxy_acquisition_leased(galaxy_id=galaxy_id, worker=self.request.hostname or ""):
            services.galaxy_acquire(galaxy=galaxy, client=services.sdss_client())
    except SdssError as exc:
        retries = settings.GIZ_SDSS_BLANK_RETRIES if exc.blank else settings.GIZ_SDSS_MAX_RETRIES
        if not exc.permanent and self.request.retries < retries:
            countdown = services.retry_delay(retries=self.request.retries, retry_after=exc.retry_after)
            logger.info("PGC %s attempt %s: %s; retrying in %.2fs", galaxy.pgc, attempt, exc, countdown)
            _lease_until_retried(galaxy_id, countdown)
            raise self.retry(countdown=countdown, exc=exc) from exc
        if exc.blank:  # blank every time: the position really is outside the footprint
            reason = f"permanent: {exc.reason} (blank in {attempt} attempts)"
        else:
            reason = str(exc) if exc.permanent else f"gave up after {attempt} attempts: {exc}"
    except Exception as exc:
        # Our own outage (database, storage) or a bug: retried like a transient failure, then recorded,
        # so that a job still finishes and the galaxy says what went wrong.
        logger.exception("PGC %s attempt %s: unexpected error", galaxy.pgc, attempt)
        if self.request.retries < settings.GIZ_SDSS_MAX_RETRIES:
            countdown = services.retry_delay(retries=self.request.retries, retry_after=None)
            _lease_until_retried(galaxy_id, countdown)
            raise self.retry(countdown=countdown, exc=exc) from exc
        reason = f"gave up after {attempt} attempts: unexpected error: {exc!r}"[:2000]
    else:
        services.galaxy_acquisition_record(galaxy_id=galaxy_id, succeeded=True)
        return "stored"
    logger.warning("PGC %s: %s", galaxy.pgc, reason)
    services.galaxy_acquisition_failed(galaxy_id=galaxy_id, reason=reason)
    services.galaxy_acquisition_record(galaxy_id=galaxy_id, succeeded=False, reason=reason)
    return "failed"


def _lease_until_retried(galaxy_id: int, countdown: float) -> None:
    # The backstop must not queue the galaxy again while its retry waits in the broker.
    # No holder: the retry's message may be taken by any worker, so this one's restart says nothing about it.
    services.galaxy_acquisition_lease(
        galaxy_id=galaxy_id, seconds=countdown + settings.GIZ_ACQUIRE_FETCH_STALE_S, worker=""
    )


@shared_task(name="acquisition.tasks.acquire_job", ignore_result=True, soft_time_limit=300, time_limit=360)
def acquire_job(job_id: int) -> int:
    """Fan a job out: one acquire_galaxy task per galaxy still pending."""
    return services.acquisition_job_fan_out(
        job_id=job_id, enqueue=lambda galaxy_id, job: acquire_galaxy.delay(galaxy_id, job)
    )


@shared_task(name="acquisition.tasks.acquire_missing", ignore_result=True, soft_time_limit=45, time_limit=55)
def acquire_missing() -> int:
    """Beat backstop: queue galaxies still without images (new, or stuck after a worker died)."""
    services.partial_files_clean()
    galaxy_ids = services.galaxies_missing_images_claim(limit=settings.GIZ_ACQUIRE_BACKSTOP_BATCH)
    # Its task counts the outcome in any job still waiting for the galaxy, so such a job still finishes.
    for galaxy_id in galaxy_ids:
        acquire_galaxy.delay(galaxy_id)
    if galaxy_ids:
        logger.info("acquire_missing: queued %s galaxies", len(galaxy_ids))
    return len(galaxy_ids)


def requeue_orphaned(*, worker: str) -> list[int]:
    """Queue again the fetches an earlier incarnation of the worker `worker` died in (giz_site.celery, at start)."""
    return services.galaxies_requeue_orphaned(worker=worker, enqueue=lambda galaxy_id: acquire_galaxy.delay(galaxy_id))
