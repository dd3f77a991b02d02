"""Celery tasks for labeling: thin wrappers around labeling.services."""

import logging

from celery import shared_task

from labeling import catalog_services, services

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def recompute_consensus() -> dict:
    """Recompute volunteer calibrations and every consensus label in batches (nightly; does not block voting)."""
    run = services.consensus_recompute_run()
    logger.info("consensus recomputed: %s", run.stats)
    return run.stats


@shared_task(acks_late=True)
def catalog_export_run_task(export_id: int) -> str | None:
    """Write a queued catalogue export to storage (admin action or POST /api/catalog/exports/)."""
    export = catalog_services.catalog_export_run(export_id=export_id)
    return export.file.name if export else None
