"""A real worker killed with SIGKILL in the middle of an acquisition job: the job finishes on a new worker.

Default recovery settings throughout; beat runs as in a deployment. The new worker starts under the killed one's
node name, as a supervisor restarts it, and queues the galaxy whose fetch died with its previous incarnation at
once; beat's backstop would queue it once its lease lapsed (GIZ_ACQUIRE_FETCH_STALE_S) otherwise.
"""

import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from acquisition.models import AcquisitionJob, AcquisitionJobItem, GalaxyImage
from acquisition.services import PARTIAL_DIR, acquisition_job_create
from acquisition.standin import running_standin
from labeling.models import Galaxy
from tests.factories import GalaxyFactory
from tests.services import broker_url, celery_beat, celery_worker, require_postgres, send_task, wait_for

N_GALAXIES = 12
SLOW_S = 2.0  # every cutout answers this late, so the kill lands in the middle of a fetch
NODE = "acquisition@giz-kill-test"


def in_flight() -> bool:
    """A fetch has started and not finished: its task moved the claim's clock back to the fetch's lease."""
    leased = timezone.now() - timedelta(seconds=settings.GIZ_ACQUIRE_STALE_S / 2)
    return Galaxy.objects.filter(state=Galaxy.State.ACQUIRING, updated_at__lt=leased).exists()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_an_acquisition_killed_with_its_worker_finishes_within_two_minutes_of_the_restart():
    require_postgres()
    url = broker_url("redis")
    with running_standin() as standin:
        standin.faults.configure(rates={"slow": 1.0}, slow_s=SLOW_S)
        env = {
            "GIZ_SDSS_CUTOUT_BASE_URL": standin.url,
            "GIZ_SDSS_FRAMES_BASE_URL": f"{standin.url}/sas",
            "GIZ_SDSS_FETCH_FITS": "0",  # colour cutouts only: the stand-in's FITS frames cost seconds of CPU each
        }
        galaxies = [
            GalaxyFactory(ra=150.0 + i * 0.01, dec=2.0, d25_arcmin=1.0, state=Galaxy.State.NEW)
            for i in range(N_GALAXIES)
        ]
        job = acquisition_job_create(galaxy_ids=[g.pk for g in galaxies], queue=False)
        with celery_beat(broker=url, extra_env=env):
            with celery_worker(broker=url, extra_env=env, timeout=180, node_name=NODE) as worker:
                send_task(url, "acquisition.tasks.acquire_job", args=[job.pk])
                wait_for(
                    lambda: Galaxy.objects.filter(state=Galaxy.State.READY).count() >= 3 and in_flight(),
                    timeout=180,
                    interval=0.05,
                    what="a fetch in the middle, three galaxies in",
                )
                worker.send_signal(signal.SIGKILL)
                worker.wait()
            killed_at = time.monotonic()
            killed = AcquisitionJob.objects.get(pk=job.pk)
            assert killed.live and killed.done < N_GALAXIES
            assert Galaxy.objects.filter(state=Galaxy.State.ACQUIRING).exists()

            with celery_worker(broker=url, extra_env=env, timeout=180, node_name=NODE):
                restarted = time.monotonic()
                wait_for(
                    lambda: AcquisitionJob.objects.filter(pk=job.pk, status="succeeded").exists(),
                    timeout=300,
                    interval=0.5,
                    what="the job to finish",
                )
                finished = time.monotonic()
    recovered_s = finished - restarted
    print(
        f"\njob finished {recovered_s:.0f} s after the worker's restart, {finished - killed_at:.0f} s after the kill "
        f"(the new worker was ready {restarted - killed_at:.0f} s after the kill)"
    )
    done = AcquisitionJob.objects.get(pk=job.pk)
    assert (done.status, done.live, done.done, done.failed) == ("succeeded", None, N_GALAXIES, 0)
    assert set(AcquisitionJobItem.objects.filter(job=job).values_list("outcome", flat=True)) == {"succeeded"}
    assert Galaxy.objects.filter(state=Galaxy.State.READY).count() == N_GALAXIES
    images = GalaxyImage.objects.filter(galaxy__in=galaxies)
    assert images.count() == N_GALAXIES and set(images.values_list("band", flat=True)) == {"color"}
    media = Path(settings.MEDIA_ROOT)
    turned = Galaxy.objects.filter(pk__in=[g.pk for g in galaxies]).values_list("color_image_horizontal", flat=True)
    folders = {(media / image.file.name).parent for image in images}  # this test's galaxies (other tests' files too)
    assert sorted(p for p in media.rglob("*.jpg") if PARTIAL_DIR not in p.parts and p.parent in folders) == sorted(
        [media / image.file.name for image in images] + [media / name for name in turned if name]
    )  # every galaxy's file (and its copy turned for the labeling page) once, nothing partial under its final name
    assert recovered_s < 120
