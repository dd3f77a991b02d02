"""Celery tasks for labeling: thin wrappers around labeling.services."""

import logging

from celery import shared_task

from labeling import services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def recompute_consensus() -> dict:
    """Recompute volunteer calibrations and every consensus label in batches (nightly; does not block voting)."""
    run = services.consensus_recompute_run()
    logger.info("consensus recomputed: %s", run.stats)
    return run.stats
