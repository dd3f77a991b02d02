"""Celery tasks for labeling: thin wrappers around labeling.services."""

import logging

from celery import shared_task

from labeling import services

logger = logging.getLogger(__name__)


# Time limits (s): the soft one raises SoftTimeLimitExceeded, which the run records as its failure.
@shared_task(
    name="labeling.tasks.recompute_consensus", acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300
)
def recompute_consensus() -> dict:
    """Refit the volunteer model to all votes and rewrite the labels in batches (nightly; voting goes on)."""
    run = services.consensus_recompute_run()
    if run is None:
        logger.info("consensus recomputation skipped: another one is running")
        return {}
    logger.info("consensus recomputed: %s", run.stats)
    return run.stats
