"""A real Celery worker process acquires a catalog from the flaky stand-in through Redis and PostgreSQL."""
# ruff: noqa: F811 - pytest fixtures imported from tests.acquisition_fixtures are used as arguments

import hashlib
from pathlib import Path

import pytest
from django.conf import settings

from acquisition.models import AcquisitionJob, GalaxyImage
from acquisition.services import PARTIAL_DIR, acquisition_job_create
from labeling.models import Galaxy
from tests.acquisition_fixtures import Standin, standin_server  # noqa: F401
from tests.factories import GalaxyFactory
from tests.services import broker_url, celery_worker, require_postgres, send_task, wait_for


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_acquires_a_job_despite_transient_faults(standin_server):
    require_postgres()
    url = broker_url("redis")
    standin = Standin(standin_server)
    standin.stats_reset()
    standin.faults(rates={"500": 0.15, "503": 0.1, "reset": 0.05, "truncated": 0.05}, next=[], retry_after=1)
    good = [GalaxyFactory(ra=30.0 + i, dec=5.0, d25_arcmin=1.0, state=Galaxy.State.NEW) for i in range(10)]
    outside = GalaxyFactory(ra=40.0, dec=-70.0, d25_arcmin=1.0, state=Galaxy.State.NEW)
    job = acquisition_job_create(galaxy_ids=[g.pk for g in [*good, outside]], queue=False)

    env = {
        "GIZ_SDSS_CUTOUT_BASE_URL": standin.url,
        "GIZ_SDSS_FRAMES_BASE_URL": f"{standin.url}/sas",
        "GIZ_SDSS_FETCH_FITS": "false",
        "GIZ_SDSS_BACKOFF_BASE_S": "0.05",
        "GIZ_SDSS_MAX_RETRIES": "12",
        "GIZ_SDSS_TIMEOUT_S": "10",
        "GIZ_SDSS_RATE_LIMIT": "50/s",
    }
    try:
        with celery_worker(broker=url, extra_env=env):
            send_task(url, "acquisition.tasks.acquire_job", args=[job.pk])
            wait_for(
                lambda: AcquisitionJob.objects.filter(pk=job.pk, status="succeeded").exists(),
                timeout=150,
                what="the acquisition job to finish",
            )
    finally:
        standin.faults(rates={}, next=[])

    job.refresh_from_db()
    assert (job.done, job.failed, job.total) == (10, 1, 11)
    outside.refresh_from_db()
    assert outside.state == Galaxy.State.FAILED
    assert "outside the SDSS footprint" in outside.failure_reason
    assert set(Galaxy.objects.filter(pk__in=[g.pk for g in good]).values_list("state", flat=True)) == {"ready"}
    images = list(GalaxyImage.objects.filter(galaxy__in=good))
    assert len(images) == 10  # one each: none lost, none stored twice
    for image in images:
        path = Path(settings.MEDIA_ROOT) / image.file.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == image.checksum
    assert not list((Path(settings.MEDIA_ROOT) / PARTIAL_DIR).glob("*.part"))
    stats = standin.stats()
    assert sum(v for k, v in stats.items() if ":fault:" in k) > 0  # the faults really happened
