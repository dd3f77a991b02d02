"""Acquisition tasks and services against the stand-in: retries, permanent failures, idempotency, jobs."""
# ruff: noqa: F811 - pytest fixtures imported from tests.acquisition_fixtures are used as arguments

import hashlib
import logging
import random
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from acquisition import services
from acquisition.models import AcquisitionJob, AcquisitionJobItem, GalaxyImage
from acquisition.services import (
    acquisition_job_create,
    galaxy_acquire_now,
    galaxy_from_position,
    image_store,
    retry_delay,
)
from acquisition.tasks import acquire_galaxy, acquire_job, acquire_missing
from giz_site.exceptions import ApplicationError
from inference.models import PendingPrediction
from inference.tasks import PENDING_FLAG
from labeling.models import Galaxy
from tests.acquisition_fixtures import media_files, standin, standin_server  # noqa: F401
from tests.factories import AcquisitionJobFactory, GalaxyFactory
from tests.services import worker_starts

pytestmark = pytest.mark.django_db


def new_galaxy(**kwargs) -> Galaxy:
    defaults = {"ra": 150.0, "dec": 2.0, "d25_arcmin": 1.0, "state": Galaxy.State.NEW}
    return GalaxyFactory(**{**defaults, **kwargs})


def stored_bytes(image: GalaxyImage) -> bytes:
    with image.file.open("rb") as f:
        return f.read()


class TestAcquireGalaxy:
    def test_stores_a_512_px_colour_stamp_with_its_checksum(self, standin, settings):
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)

        galaxy.refresh_from_db()
        assert (galaxy.state, galaxy.failure_reason) == (Galaxy.State.READY, "")
        image = GalaxyImage.objects.get(galaxy=galaxy)
        assert (image.band, image.format, image.source, image.width, image.height) == (
            "color",
            "jpeg",
            "sdss",
            512,
            512,
        )
        assert image.pixel_scale == pytest.approx(120 / 512)
        assert hashlib.sha256(stored_bytes(image)).hexdigest() == image.checksum
        pgc = galaxy.pgc
        assert image.file.name.startswith(f"images/{pgc % 1000:03d}/{pgc}/{pgc}_color_")
        # Beside it, the copy turned major axis horizontal that the labeling page shows.
        horizontal = services.horizontal_name(image.file.name)
        assert galaxy.color_image_horizontal.name == horizontal
        assert sorted(p.name for p in media_files(settings.MEDIA_ROOT)) == sorted(
            [Path(image.file.name).name, Path(horizontal).name]
        )

    def test_fits_bands_are_stored_beside_the_colour_stamp(self, standin, settings):
        settings.GIZ_SDSS_FETCH_FITS = True
        settings.GIZ_SDSS_TIMEOUT_S = 30  # the stand-in renders a whole frame first
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)
        images = {(i.band, i.format): i for i in GalaxyImage.objects.filter(galaxy=galaxy)}
        assert set(images) == {("color", "jpeg"), ("g", "fits"), ("r", "fits"), ("i", "fits")}
        assert (images["r", "fits"].width, images["r", "fits"].pixel_scale) == (303, pytest.approx(0.396127))
        assert standin.stats() == {"cutout:ok": 1, "sql:ok": 1, "frame:ok": 3}

    def test_transient_failures_are_retried_honouring_retry_after(self, standin, settings, caplog):
        settings.GIZ_SDSS_BACKOFF_BASE_S, settings.GIZ_SDSS_MAX_RETRIES = 0.01, 6
        standin.faults(next=["500", "503", "reset", "truncated", "html"], retry_after=3)
        galaxy = new_galaxy()
        with caplog.at_level(logging.INFO, logger="acquisition.tasks"):
            acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.READY
        stats = standin.stats()
        assert stats["cutout:ok"] == 1
        assert sum(v for k, v in stats.items() if ":fault:" in k) == 5
        delays = [float(r.message.rsplit(" ", 1)[1].rstrip("s")) for r in caplog.records if "retrying in" in r.message]
        assert len(delays) == 5
        assert delays[1] >= 3.0  # the 503's Retry-After
        assert all(d < 1 for i, d in enumerate(delays) if i != 1)  # the others: tiny backoff from the setting

    def test_giving_up_after_the_retry_limit_records_the_reason(self, standin, settings):
        settings.GIZ_SDSS_MAX_RETRIES = 2
        standin.faults(rates={"500": 1.0})
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.FAILED
        assert galaxy.failure_reason == "gave up after 3 attempts: transient: HTTP 500 from the server"
        assert standin.stats() == {"cutout:fault:500": 3}
        assert not GalaxyImage.objects.exists()

    @pytest.mark.parametrize(
        ("fault", "dec", "reason"),
        [
            ("404", 2.0, "permanent: HTTP 404: no such product"),
            ("wrong_size", 2.0, "permanent: image of the wrong size: 241x480, asked for 480x480"),
        ],
    )
    def test_permanent_failures_are_recorded_without_retrying(self, standin, fault, dec, reason):
        standin.faults(next=[fault])
        galaxy = new_galaxy(dec=dec)
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert (galaxy.state, galaxy.failure_reason) == (Galaxy.State.FAILED, reason)
        assert sum(standin.stats().values()) == 1  # asked once, never again
        assert not GalaxyImage.objects.exists()

    def test_a_transient_blank_cutout_is_retried_and_stored(self, standin):
        standin.faults(next=["blank"])
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert (galaxy.state, galaxy.failure_reason) == (Galaxy.State.READY, "")
        assert standin.stats() == {"cutout:fault:blank": 1, "cutout:ok": 1}

    def test_outside_the_footprint_is_permanent_only_after_the_blank_retries(self, standin, settings):
        settings.GIZ_SDSS_BLANK_RETRIES = 2
        galaxy = new_galaxy(dec=-60.0)  # the stand-in's sky has no data there
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert (galaxy.state, galaxy.failure_reason) == (
            Galaxy.State.FAILED,
            "permanent: blank image: the position is outside the SDSS footprint (blank in 3 attempts)",
        )
        assert standin.requests_made() == 3  # the blank retries, not the 4 of transient failures
        assert not GalaxyImage.objects.exists()

    def test_a_synthetic_galaxy_is_never_fetched_from_sdss(self, standin):
        galaxy = new_galaxy(source=Galaxy.Source.SYNTHETIC)
        acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.failure_reason == "permanent: a synthetic galaxy is rendered, not fetched from SDSS"
        assert standin.stats() == {}

    def test_a_deleted_galaxy_is_skipped(self, standin):
        assert acquire_galaxy.delay(987654321).get() == "missing"
        assert standin.stats() == {}


class TestIdempotency:
    def test_an_image_stored_with_a_matching_checksum_is_not_fetched_again(self, standin, settings):
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)
        first = GalaxyImage.objects.get(galaxy=galaxy)
        acquire_galaxy.delay(galaxy.pk)
        assert standin.stats() == {"cutout:ok": 1}
        again = GalaxyImage.objects.get(galaxy=galaxy)
        assert (again.pk, again.file.name, again.checksum) == (first.pk, first.file.name, first.checksum)
        assert len(media_files(settings.MEDIA_ROOT)) == 2  # the stamp and its horizontal copy

    def test_a_damaged_file_is_fetched_again(self, standin, settings):
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)
        image = GalaxyImage.objects.get(galaxy=galaxy)
        Path(image.file.path).write_bytes(b"half a jpeg")
        acquire_galaxy.delay(galaxy.pk)
        assert standin.stats() == {"cutout:ok": 2}
        image.refresh_from_db()
        assert hashlib.sha256(stored_bytes(image)).hexdigest() == image.checksum

    def test_image_store_twice_with_the_same_bytes_writes_once(self, standin, settings):
        galaxy = new_galaxy()
        data = services.sdss_client().fetch_cutout(ra=galaxy.ra, dec=galaxy.dec, d25_arcmin=1.0).data
        kwargs = {"galaxy": galaxy, "band": "color", "format": "jpeg", "source": "sdss", "pixel_scale": 0.25}
        one = image_store(data=data, **kwargs)
        mtime = Path(one.file.path).stat().st_mtime_ns
        two = image_store(data=data, **kwargs)
        assert (two.pk, Path(two.file.path).stat().st_mtime_ns) == (one.pk, mtime)
        assert GalaxyImage.objects.count() == 1

    def test_new_bytes_replace_the_file_after_commit(self, standin, settings, django_capture_on_commit_callbacks):
        galaxy = new_galaxy()
        client = services.sdss_client()
        kwargs = {"galaxy": galaxy, "band": "color", "format": "jpeg", "source": "sdss", "pixel_scale": 0.25}
        with (
            mock.patch("inference.tasks.predict_pending_task.apply_async"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            old = image_store(data=client.fetch_cutout(ra=150.0, dec=2.0, d25_arcmin=1.0).data, **kwargs)
            old_path = Path(old.file.path)
        with (
            mock.patch("inference.tasks.predict_pending_task.apply_async"),
            django_capture_on_commit_callbacks(execute=True),
        ):
            new = image_store(data=client.fetch_cutout(ra=150.0, dec=2.0, d25_arcmin=3.0).data, **kwargs)
        assert new.pk == old.pk and new.file.name != old.file.name
        assert not old_path.exists()
        # The old stamp's horizontal copy goes with it.
        assert sorted(media_files(settings.MEDIA_ROOT)) == sorted(
            [Path(new.file.path), Path(settings.MEDIA_ROOT) / services.horizontal_name(new.file.name)]
        )

    def test_a_worker_killed_mid_write_leaves_no_visible_file(self, standin, settings):
        galaxy = new_galaxy()
        with mock.patch("acquisition.services.os.replace", side_effect=SystemExit("killed")), pytest.raises(SystemExit):
            acquire_galaxy.delay(galaxy.pk)
        assert media_files(settings.MEDIA_ROOT) == []
        assert not GalaxyImage.objects.exists()
        acquire_galaxy.delay(galaxy.pk)  # the redelivered task finishes the job
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.READY
        assert len(media_files(settings.MEDIA_ROOT)) == 2  # the stamp and its horizontal copy

    def test_resumes_where_it_stopped(self, standin, settings):
        settings.GIZ_SDSS_FETCH_FITS = True
        settings.GIZ_SDSS_TIMEOUT_S = 30
        settings.GIZ_SDSS_MAX_RETRIES = 0
        standin.faults(next=["none", "none", "none", "503"])  # cutout, field, g frame fine; r frame fails
        galaxy = new_galaxy()
        acquire_galaxy.delay(galaxy.pk)
        assert set(GalaxyImage.objects.values_list("band", flat=True)) == {"color", "g"}
        acquire_galaxy.delay(galaxy.pk)
        assert set(GalaxyImage.objects.values_list("band", flat=True)) == {"color", "g", "r", "i"}
        # The colour stamp and the g frame were not fetched again.
        assert standin.stats() == {"cutout:ok": 1, "sql:ok": 2, "frame:ok": 3, "frame:fault:503": 1}

    def test_partial_files_of_killed_workers_are_cleaned_up(self, settings, tmp_path):
        settings.MEDIA_ROOT = str(tmp_path)
        folder = tmp_path / services.PARTIAL_DIR
        folder.mkdir()
        (folder / "old.jpg.1.part").write_bytes(b"x")
        assert services.partial_files_clean(older_than_s=-1) == 1
        assert not list(folder.iterdir())


class TestBackoff:
    def test_exponential_with_jitter_and_a_cap(self, settings):
        settings.GIZ_SDSS_BACKOFF_BASE_S, settings.GIZ_SDSS_BACKOFF_MAX_S = 2.0, 60.0
        rng = random.Random(1)
        for retries, ceiling in [(0, 2), (1, 4), (2, 8), (3, 16), (8, 60)]:
            delays = {retry_delay(retries=retries, retry_after=None, rng=rng) for _ in range(50)}
            assert all(ceiling / 2 <= d <= ceiling for d in delays)
            assert len(delays) > 40  # jittered: the workers do not come back in step

    def test_retry_after_is_a_floor(self, settings):
        settings.GIZ_SDSS_BACKOFF_BASE_S, settings.GIZ_SDSS_BACKOFF_MAX_S = 2.0, 60.0
        assert retry_delay(retries=0, retry_after=30, rng=random.Random(1)) == 30
        assert retry_delay(retries=0, retry_after=3600, rng=random.Random(1)) == 60  # but capped


class TestJobs:
    def test_a_job_fans_out_and_counts_every_galaxy_once(self, standin, django_capture_on_commit_callbacks):
        galaxies = [new_galaxy(ra=150.0 + i) for i in range(4)] + [new_galaxy(dec=-60.0)]
        with django_capture_on_commit_callbacks(execute=True):
            job = acquisition_job_create(galaxy_ids=[g.pk for g in galaxies], description="five")
        job.refresh_from_db()
        assert (job.status, job.total, job.done, job.failed, job.progress) == ("succeeded", 5, 4, 1, 1.0)
        assert job.finished_at is not None
        failed = AcquisitionJobItem.objects.get(job=job, outcome="failed")
        assert (failed.galaxy_id, failed.reason) == (
            galaxies[-1].pk,
            "permanent: blank image: the position is outside the SDSS footprint (blank in 3 attempts)",
        )
        # A redelivered task (worker killed after the work, before the ack) changes no count.
        acquire_galaxy.delay(galaxies[0].pk, job.pk)
        acquire_galaxy.delay(galaxies[-1].pk, job.pk)
        job.refresh_from_db()
        assert (job.done, job.failed) == (4, 1)

    def test_a_redelivered_fan_out_waits_for_a_job_that_beats_and_requeues_one_that_stopped(self, standin):
        galaxies = [new_galaxy(ra=150.0 + i) for i in range(2)]

        def job_over_the_galaxies(**trait) -> AcquisitionJob:
            job = AcquisitionJobFactory(total=2, **trait)
            AcquisitionJobItem.objects.bulk_create([AcquisitionJobItem(job=job, galaxy=g) for g in galaxies])
            return job

        beating, dead = job_over_the_galaxies(running=True), job_over_the_galaxies(stale=True)
        assert acquire_job.delay(beating.pk).get() == 0  # its galaxies are on their way: none queued twice
        assert acquire_job.delay(dead.pk).get() == 2
        beating.refresh_from_db()
        dead.refresh_from_db()
        # The galaxies were fetched once, by the dead job's second fan-out, and count in both jobs waiting for them.
        assert (dead.status, dead.done, dead.live) == ("succeeded", 2, None)
        assert (beating.status, beating.done) == ("succeeded", 2)
        assert standin.stats() == {"cutout:ok": 2}

    @pytest.mark.parametrize("first", ["beat", "fan-out"])
    def test_beat_and_a_jobs_fan_out_never_acquire_a_galaxy_twice(self, standin, first):
        galaxies = [new_galaxy(ra=60.0 + i) for i in range(6)]
        job = acquisition_job_create(galaxy_ids=[g.pk for g in galaxies], queue=False)  # fan-out still queued
        queued = []
        with mock.patch.object(acquire_galaxy, "delay", lambda gid, job_id=None: queued.append(gid)):
            steps = {
                "beat": lambda: acquire_missing.apply(),
                "fan-out": lambda: services.acquisition_job_fan_out(
                    job_id=job.pk, enqueue=lambda gid, job_id: queued.append(gid)
                ),
            }
            steps[first]()
            steps["fan-out" if first == "beat" else "beat"]()
        assert sorted(queued) == sorted(g.pk for g in galaxies)  # each once, by whichever came first
        for galaxy_id in queued:
            acquire_galaxy.apply(args=[galaxy_id])
        # The job counts what is stored, whichever task stored it.
        job.refresh_from_db()
        assert (job.status, job.done, job.failed) == ("succeeded", 6, 0)
        assert GalaxyImage.objects.count() == 6 and standin.stats() == {"cutout:ok": 6}

    def test_a_failure_reported_after_another_delivery_stored_the_galaxy_counts_as_stored(self, standin):
        galaxy = new_galaxy()
        job = acquisition_job_create(galaxy_ids=[galaxy.pk], queue=False)
        services.galaxy_acquire(galaxy=galaxy)  # a first delivery stored it
        services.galaxy_acquisition_record(galaxy_id=galaxy.pk, succeeded=False, reason="a late duplicate failed")
        job.refresh_from_db()
        assert (job.done, job.failed) == (1, 0)

    def test_job_progress_shows_in_the_admin(self, bob_client):
        job = AcquisitionJobFactory(total=4, done=2, failed=1, running=True)
        page = bob_client.get("/admin/acquisition/acquisitionjob/").content.decode()
        assert "75%" in page
        assert bob_client.get(f"/admin/acquisition/acquisitionjob/{job.pk}/change/").status_code == 200

    def test_beat_backstop_picks_up_galaxies_without_images(self, standin):
        waiting = new_galaxy(ra=10.0)
        stuck = new_galaxy(ra=11.0, state=Galaxy.State.ACQUIRING)
        Galaxy.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=2))
        busy = new_galaxy(ra=12.0, state=Galaxy.State.ACQUIRING)  # recently queued: left alone
        failed = new_galaxy(ra=13.0, state=Galaxy.State.FAILED)
        synthetic = new_galaxy(ra=14.0, source=Galaxy.Source.SYNTHETIC)
        assert acquire_missing.delay().get() == 2
        states = dict(Galaxy.objects.values_list("pk", "state"))
        assert states[waiting.pk] == states[stuck.pk] == Galaxy.State.READY
        assert (states[busy.pk], states[failed.pk], states[synthetic.pk]) == ("acquiring", "failed", "new")
        assert acquire_missing.delay().get() == 0
        assert standin.stats() == {"cutout:ok": 2}

    def test_a_fetch_killed_mid_task_is_queued_again_by_the_backstop_within_two_minutes(self, standin, settings):
        killed = new_galaxy(ra=20.0)
        waiting = new_galaxy(ra=21.0)  # claimed with it, still behind others in the queue
        with mock.patch.object(acquire_galaxy, "delay"):
            assert acquire_missing.apply().get() == 2

        class WorkerKilled(BaseException):  # what no except clause in the task catches, like SIGKILL
            pass

        with mock.patch("acquisition.services.galaxy_acquire", side_effect=WorkerKilled), pytest.raises(WorkerKilled):
            acquire_galaxy(killed.pk)
        started = timezone.now()

        def backstop_at(seconds: float) -> list[int]:
            queued = []
            with (
                mock.patch("django.utils.timezone.now", return_value=started + timedelta(seconds=seconds)),
                mock.patch.object(acquire_galaxy, "delay", lambda gid: queued.append(gid)),
            ):
                acquire_missing.apply()
            return queued

        # Its lease was renewed while the task lived, so until GIZ_ACQUIRE_FETCH_STALE_S after its death the
        # galaxy is left alone; beat runs the backstop every minute: the first run after that queues it once.
        assert backstop_at(settings.GIZ_ACQUIRE_FETCH_STALE_S - 1) == []
        schedule = settings.CELERY_BEAT_SCHEDULE["acquire-missing-images"]["schedule"]
        assert backstop_at(settings.GIZ_ACQUIRE_FETCH_STALE_S + schedule) == [killed.pk] and schedule <= 60
        assert settings.GIZ_ACQUIRE_FETCH_STALE_S + schedule <= 120
        assert backstop_at(settings.GIZ_ACQUIRE_FETCH_STALE_S + schedule + 1) == []  # claimed again: once
        assert waiting.pk not in backstop_at(600)  # a task not yet started keeps its claim (GIZ_ACQUIRE_STALE_S)
        acquire_galaxy.apply(args=[killed.pk])
        killed.refresh_from_db()
        assert killed.state == Galaxy.State.READY and standin.stats() == {"cutout:ok": 1}

    def test_a_fetch_killed_with_its_worker_is_queued_again_once_when_that_worker_starts(
        self, standin, django_capture_on_commit_callbacks
    ):
        killed, elsewhere = new_galaxy(ra=20.0), new_galaxy(ra=21.0)
        with mock.patch.object(acquire_galaxy, "delay"):
            assert acquire_missing.apply().get() == 2

        class WorkerKilled(BaseException):  # what no except clause in the task catches, like SIGKILL
            pass

        for galaxy, node in ((killed, "celery@a"), (elsewhere, "celery@b")):
            acquire_galaxy.push_request(hostname=node)  # as the worker of that node name runs it
            try:
                with (
                    mock.patch("acquisition.services.galaxy_acquire", side_effect=WorkerKilled),
                    pytest.raises(WorkerKilled),
                ):
                    acquire_galaxy(galaxy.pk)
            finally:
                acquire_galaxy.pop_request()

        queued = []
        with mock.patch.object(acquire_galaxy, "delay", lambda gid: queued.append(gid)):
            with django_capture_on_commit_callbacks(execute=True):
                worker_starts("celery@a")  # at once, its lease still fresh
            assert queued == [killed.pk]
            with django_capture_on_commit_callbacks(execute=True):
                worker_starts("celery@a")  # claimed again, no holder: once
                acquire_missing.apply()  # nor the backstop: its new task has not started yet
        assert queued == [killed.pk]
        acquire_galaxy.apply(args=[killed.pk])
        states = dict(Galaxy.objects.values_list("pk", "state"))
        assert (states[killed.pk], states[elsewhere.pk]) == ("ready", "acquiring")  # celery@b is yet to start
        assert standin.stats() == {"cutout:ok": 1}

    @pytest.mark.django_db(transaction=True)
    def test_a_live_fetch_keeps_its_galaxy_however_long_it_takes_and_loses_it_soon_after_dying(self, settings):
        settings.GIZ_ACQUIRE_FETCH_STALE_S = 0.6  # renewed every 0.2 s
        galaxy = new_galaxy(state=Galaxy.State.ACQUIRING)
        queued = []
        with mock.patch.object(acquire_galaxy, "delay", queued.append):
            with services.galaxy_acquisition_leased(galaxy_id=galaxy.pk):
                for _ in range(3):  # a fetch five times as long as the lease
                    time.sleep(0.5)
                    acquire_missing.apply()
                assert queued == []
            time.sleep(0.8)  # the renewals stopped: the lease lapses as it would after a SIGKILL
            acquire_missing.apply()
        assert queued == [galaxy.pk]

    def test_a_galaxy_waiting_to_retry_is_not_queued_again(self, standin, settings):
        settings.GIZ_SDSS_BACKOFF_BASE_S = 400.0
        galaxy = new_galaxy()
        with mock.patch.object(acquire_galaxy, "delay"):
            assert acquire_missing.apply().get() == 1
        acquire_galaxy.push_request(hostname="celery@a")  # as the worker of that node name runs it
        try:
            with (
                mock.patch("acquisition.services.image_store", side_effect=RuntimeError("storage down")),
                mock.patch.object(acquire_galaxy, "retry", side_effect=RuntimeError("retry queued")),
                pytest.raises(RuntimeError, match="retry queued"),
            ):
                acquire_galaxy(galaxy.pk)
        finally:
            acquire_galaxy.pop_request()
        queued = []
        later = timezone.now() + timedelta(seconds=180)
        with (
            mock.patch("django.utils.timezone.now", return_value=later),
            mock.patch.object(acquire_galaxy, "delay", lambda gid: queued.append(gid)),
        ):
            acquire_missing.apply()
            # The retry's message may wait in any worker: celery@a starting again says nothing about it.
            worker_starts("celery@a")
        assert queued == []

    def test_the_backstop_finishes_a_job_whose_task_was_lost(self, standin):
        galaxies = [new_galaxy(ra=50.0 + i) for i in range(2)]
        job = acquisition_job_create(galaxy_ids=[g.pk for g in galaxies], queue=False)  # its tasks never ran
        Galaxy.objects.update(state=Galaxy.State.ACQUIRING, updated_at=timezone.now() - timedelta(hours=2))
        acquire_missing.delay()
        job.refresh_from_db()
        assert (job.status, job.done) == ("succeeded", 2)

    def test_an_unexpected_error_is_retried_then_recorded(self, standin, settings):
        settings.GIZ_SDSS_MAX_RETRIES = 1
        galaxy = new_galaxy()
        job = acquisition_job_create(galaxy_ids=[galaxy.pk], queue=False)
        with mock.patch("acquisition.services.image_store", side_effect=RuntimeError("disk on fire")):
            acquire_galaxy.delay(galaxy.pk, job.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.FAILED
        assert galaxy.failure_reason == "gave up after 2 attempts: unexpected error: RuntimeError('disk on fire')"
        job.refresh_from_db()
        assert (job.status, job.failed) == ("succeeded", 1)

    def test_the_beat_schedule_has_the_backstop(self, settings):
        entries = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
        assert "acquisition.tasks.acquire_missing" in entries


@pytest.mark.django_db(transaction=True)
class TestCommand:
    def test_acquire_images_follows_the_job_with_a_progress_bar(self, standin):
        galaxies = [new_galaxy(ra=20.0 + i) for i in range(3)] + [new_galaxy(dec=-60.0)]
        out, err = StringIO(), StringIO()
        call_command("acquire_images", "--pgc", *[str(g.pgc) for g in galaxies], stdout=out, stderr=err)
        assert "done: 3 stored, 1 failed." in out.getvalue()
        assert "100%" in err.getvalue()
        assert "outside the SDSS footprint" in err.getvalue()

    def test_unknown_pgc_is_an_error(self, standin):
        from django.core.management import CommandError

        with pytest.raises(CommandError, match="Unknown PGC numbers: 424242"):
            call_command("acquire_images", "--pgc", "424242", stdout=StringIO(), stderr=StringIO())


class TestInferenceHandOff:
    def test_a_new_colour_image_is_handed_to_inference_after_commit(
        self, standin, settings, django_capture_on_commit_callbacks
    ):
        cache.delete(PENDING_FLAG)
        galaxy = new_galaxy()
        with (
            mock.patch("inference.tasks.predict_pending_task.apply_async") as predict,
            django_capture_on_commit_callbacks(execute=True),
        ):
            acquire_galaxy.delay(galaxy.pk)
            assert not predict.called  # not before the commit
        predict.assert_called_once_with(countdown=settings.GIZ_PREDICT_BATCH_WAIT_S)
        image = GalaxyImage.objects.get(galaxy=galaxy, band="color")
        assert list(PendingPrediction.objects.values_list("image_id", flat=True)) == [image.pk]
        cache.delete(PENDING_FLAG)
        with (
            mock.patch("inference.tasks.predict_pending_task.apply_async") as predict,
            django_capture_on_commit_callbacks(execute=True),
        ):
            acquire_galaxy.delay(galaxy.pk)  # nothing new stored
        assert not predict.called

    def test_a_broker_failure_in_the_hand_off_does_not_fail_the_acquisition(
        self, standin, django_capture_on_commit_callbacks
    ):
        cache.delete(PENDING_FLAG)
        galaxy = new_galaxy()
        with (
            mock.patch("inference.tasks.predict_pending_task.apply_async", side_effect=OSError("broker down")),
            django_capture_on_commit_callbacks(execute=True),
        ):
            acquire_galaxy.delay(galaxy.pk)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.READY
        assert PendingPrediction.objects.filter(image__galaxy=galaxy).exists()  # the backstop will predict it
        assert cache.add(PENDING_FLAG, True)  # not left set: the next image stored asks again
        cache.delete(PENDING_FLAG)


class TestSynchronousServices:
    def test_acquire_now_returns_the_images(self, standin):
        galaxy = new_galaxy()
        images = galaxy_acquire_now(galaxy=galaxy)
        assert [(i.band, i.width) for i in images] == [("color", 512)]

    def test_acquire_now_permanent_failure(self, standin):
        standin.faults(next=["404"])
        galaxy = new_galaxy()
        with pytest.raises(ApplicationError) as excinfo:
            galaxy_acquire_now(galaxy=galaxy)
        assert (excinfo.value.status_code, excinfo.value.code, excinfo.value.details["permanent"]) == (
            422,
            "image_unavailable",
            True,
        )
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.FAILED

    def test_acquire_now_blank_is_a_422_that_records_nothing_permanent(self, standin):
        galaxy = new_galaxy(dec=-60.0)
        with pytest.raises(ApplicationError) as excinfo:
            galaxy_acquire_now(galaxy=galaxy)
        assert (excinfo.value.status_code, excinfo.value.code) == (422, "image_unavailable")
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.NEW  # the retrying background task decides

    def test_acquire_now_transient_failure_is_a_503_with_retry_after(self, standin):
        standin.faults(next=["503"], retry_after=9)
        galaxy = new_galaxy()
        with pytest.raises(ApplicationError) as excinfo:
            galaxy_acquire_now(galaxy=galaxy)
        assert (excinfo.value.status_code, excinfo.value.details["retry_after_s"]) == (503, 9)
        galaxy.refresh_from_db()
        assert galaxy.state == Galaxy.State.NEW  # nothing recorded: it may work next time

    def test_galaxy_from_position_creates_once(self, settings):
        one = galaxy_from_position(ra=150.1, dec=2.2, fov_arcmin=3.0)
        two = galaxy_from_position(ra=150.1 + 0.1 / 3600, dec=2.2, fov_arcmin=3.0)
        assert one.pk == two.pk
        assert (one.source, one.d25_arcmin, one.state) == ("upload", 1.5, "new")
        other = galaxy_from_position(ra=10.0, dec=2.2, fov_arcmin=3.0)
        assert other.pgc == one.pgc + 1

    @pytest.mark.parametrize(("ra", "dec", "fov"), [(400, 0, 2), (10, -95, 2), (10, 0, 0), ("x", 0, 2)])
    def test_galaxy_from_position_rejects_bad_input(self, ra, dec, fov):
        with pytest.raises(ApplicationError):
            galaxy_from_position(ra=ra, dec=dec, fov_arcmin=fov)
