"""Preloaded ensemble inference, predictions, discrepancy alarms and bulk jobs."""

import pytest
from django.core import mail
from django.urls import reverse

from giz_site.exceptions import ApplicationError
from inference import ensemble, imaging, services
from inference.models import DiscrepancyAlarm, EnsemblePrediction, InferenceJob, InferenceJobItem, Prediction
from inference.selectors import inference_job_results
from inference.tasks import inference_job_task, predict_galaxy_task, predict_missing
from labeling.models import ConsensusLabel
from tests import inference_fixtures
from tests.factories import GalaxyFactory, GalaxyImageFactory, InferenceJobFactory, ModelVersionFactory, galaxy_jpeg
from tests.inference_fixtures import (
    constant_regression_model,
    make_ensemble,
)

active_ensemble = inference_fixtures.active_ensemble
tiny_inference_settings = inference_fixtures.tiny_inference_settings

pytestmark = pytest.mark.django_db


class TestPrediction:
    def test_predict_galaxy_task_stores_members_summary_and_raises_a_spread_alarm(
        self, active_ensemble, settings, django_capture_on_commit_callbacks
    ):
        settings.GIZ_ALARM_EMAILS = ["staff@example.org"]
        image = GalaxyImageFactory()
        galaxy = image.galaxy

        with django_capture_on_commit_callbacks(execute=True):
            assert predict_galaxy_task.delay(galaxy.pk).get() == "ok"

        rows = Prediction.objects.filter(galaxy=galaxy, inclination__isnull=False)
        members = dict(rows.values_list("model_version__name", "inclination"))
        assert members == pytest.approx({"reg-0-50": 50.0, "reg-1-60": 60.0, "reg-2-70": 70.0}, abs=1e-3)
        summary = EnsemblePrediction.objects.get(galaxy=galaxy)
        assert summary.image == image
        assert summary.median == pytest.approx(60.0, abs=1e-3)
        assert summary.mean == pytest.approx(60.0, abs=1e-3)
        assert summary.spread == pytest.approx(8.165, abs=1e-2)
        assert summary.rejection_likelihood == pytest.approx(0.2, abs=1e-3)
        alarm = DiscrepancyAlarm.objects.get(galaxy=galaxy)
        assert alarm.kind == DiscrepancyAlarm.Kind.ENSEMBLE_SPREAD and alarm.status == "open"
        assert alarm.ensemble_spread == pytest.approx(8.165, abs=1e-2)
        assert len(mail.outbox) == 1 and "staff@example.org" in mail.outbox[0].to
        assert "Models disagree" in mail.outbox[0].subject
        # The labeling site's priority now reflects the open alarm and the spread.
        galaxy.refresh_from_db()
        assert galaxy.label_priority >= 10

    def test_agreeing_members_raise_no_alarm_and_repeats_keep_one_open_alarm(self, db):
        make_ensemble((60.0, 61.0, 62.0))
        galaxy = GalaxyFactory(with_image=True)
        result = services.predict_galaxy(galaxy=galaxy)
        assert result.alarm_raised is False and result.spread < 1
        assert not DiscrepancyAlarm.objects.exists()
        # Volunteers say 75 deg: the models (61) disagree with them by more than 8 deg.
        ConsensusLabel.objects.create(galaxy=galaxy, status="accepted", inclination=75.0, n_votes=3)
        services.predict_galaxy(galaxy=galaxy)
        services.predict_galaxy(galaxy=galaxy)
        alarm = DiscrepancyAlarm.objects.get(galaxy=galaxy)
        assert alarm.kind == DiscrepancyAlarm.Kind.HUMAN_DISAGREEMENT
        assert alarm.consensus_inclination == 75.0 and alarm.ensemble_median == pytest.approx(61.0, abs=1e-3)
        # One row per image and model, and one summary per image and ensemble, updated in place.
        assert EnsemblePrediction.objects.filter(galaxy=galaxy).count() == 1
        assert Prediction.objects.filter(galaxy=galaxy).count() == 4

    def test_uploaded_bytes_give_every_number(self, active_ensemble):
        result = services.predict_image_bytes(data=galaxy_jpeg())
        assert set(result.members) == {"reg-0-50", "reg-1-60", "reg-2-70"}
        assert result.rejection_members == pytest.approx({"rej-0": 0.2}, abs=1e-3)
        assert result.alarm_raised is True
        assert result.model_versions == ["reg-0-50", "reg-1-60", "reg-2-70", "rej-0"]

    def test_bad_image_and_no_models_are_clear_errors(self, db):
        with pytest.raises(ApplicationError) as excinfo:
            services.predict_image_bytes(data=galaxy_jpeg())
        assert excinfo.value.code == "no_active_models" and excinfo.value.status_code == 503
        make_ensemble()
        with pytest.raises(imaging.ImageError):
            services.predict_image_bytes(data=b"this is not an image")
        image = GalaxyImageFactory()
        galaxy = image.galaxy
        image.delete()
        with pytest.raises(ApplicationError) as excinfo:
            services.predict_galaxy(galaxy=galaxy)
        assert excinfo.value.code == "no_image"


class TestPreloadedEnsemble:
    def test_models_load_once_and_the_compiled_function_never_retraces(self, active_ensemble):
        before = ensemble.stats()["models_loaded"]
        for seed in range(4):
            services.predict_image_bytes(data=galaxy_jpeg(seed=seed))
        assert ensemble.stats()["models_loaded"] - before == 4  # 3 regression + 1 rejection, once
        current = ensemble.current()
        function = current.groups[0].function
        assert function.input_signature[0].shape.as_list() == [None, 32, 32, 3]
        galaxies = [GalaxyFactory(with_image=True, image__seed=seed) for seed in range(3)]
        services.predict_galaxies(galaxies=galaxies)  # a batch of 3 through the same graph
        assert function.experimental_get_tracing_count() == 1

    def test_activation_swaps_the_whole_ensemble_and_a_held_one_stays_complete(self, active_ensemble):
        old = ensemble.current()
        assert len(old.members) == 4
        new = ModelVersionFactory(keras_model=constant_regression_model(80.0), name="reg-new", status="candidate")
        services.model_version_activate(model_version=new)
        # A request that took the old ensemble keeps using all of it.
        outputs = old.run({(32, "color"): imaging.prepare_batch([galaxy_jpeg()], size=32)})
        assert set(outputs) == {"reg-0-50", "reg-1-60", "reg-2-70", "rej-0"}
        result = services.predict_image_bytes(data=galaxy_jpeg())
        assert set(result.members) == {"reg-0-50", "reg-1-60", "reg-2-70", "reg-new"}
        assert result.median == pytest.approx(65.0, abs=1e-3)
        assert ensemble.current() is not old

    def test_warm_up_loads_before_the_first_request(self, active_ensemble):
        warmed = ensemble.warm_up()
        assert warmed is not None and warmed.groups[0].function.experimental_get_tracing_count() == 1
        loads = ensemble.stats()["models_loaded"]
        services.predict_image_bytes(data=galaxy_jpeg())
        assert ensemble.stats()["models_loaded"] == loads


class TestAlarmsInTheAdmin:
    def test_list_shows_both_images_and_the_numbers_and_staff_resolve_with_a_note(
        self, active_ensemble, bob_client, bob
    ):
        image = GalaxyImageFactory()
        galaxy = image.galaxy
        services.predict_galaxy(galaxy=galaxy)
        alarm = DiscrepancyAlarm.objects.get(galaxy=galaxy)

        html = bob_client.get(reverse("admin:inference_discrepancyalarm_changelist")).content.decode()
        assert html.count(image.file.url) >= 2 and "invert(1)" in html
        assert "reg-0-50: 50.0" in html and "8.16" in html

        url = reverse("admin:inference_discrepancyalarm_change", args=[alarm.pk])
        assert "Resolve with this note" in bob_client.get(url).content.decode()
        response = bob_client.post(url, {"resolution_note": "Two galaxies overlap", "_resolve": "1"})
        assert response.status_code == 302
        alarm.refresh_from_db()
        assert alarm.status == "resolved" and alarm.resolved_by == bob
        assert alarm.resolution_note == "Two galaxies overlap"
        with pytest.raises(ApplicationError):
            services.alarm_resolve(alarm=alarm, user=bob, note="again")


class TestBulkJobs:
    def test_a_pgc_list_job_runs_in_batches_with_progress_and_per_galaxy_results(
        self, active_ensemble, settings, bob, django_capture_on_commit_callbacks
    ):
        settings.GIZ_INFERENCE_BATCH_SIZE = 2
        galaxies = [GalaxyFactory(with_image=True, image__seed=seed) for seed in range(3)]
        no_image = GalaxyFactory(with_image=True, image__seed=9)
        no_image.images.all().delete()
        pgcs = [g.pgc for g in galaxies] + [no_image.pgc, 424242]

        with django_capture_on_commit_callbacks(execute=True):
            job = services.inference_job_create(kind=InferenceJob.Kind.PGC_LIST, user=bob, pgcs=pgcs)  # eager

        job.refresh_from_db()
        assert (job.status, job.total, job.done, job.failed) == ("succeeded", 5, 3, 2)
        assert job.progress == 1.0
        results = {r.pgc: r for r in inference_job_results(job=job)}
        assert results[galaxies[0].pgc].median == pytest.approx(60.0, abs=1e-3)
        assert results[galaxies[0].pgc].alarm_raised is True
        assert results[424242].status == "failed" and "Unknown" in results[424242].reason
        assert results[no_image.pgc].status == "failed" and "no stored colour image" in results[no_image.pgc].reason
        assert EnsemblePrediction.objects.count() == 3

    def test_a_redelivered_job_task_leaves_a_job_that_still_beats_alone_and_takes_over_a_dead_one(
        self, active_ensemble
    ):
        galaxy = GalaxyFactory(with_image=True)
        busy = InferenceJobFactory(pgcs=[galaxy.pgc], running=True)
        inference_job_task.delay(busy.pk)
        busy.refresh_from_db()
        assert (busy.status, busy.live, busy.done) == ("running", True, 0)
        assert not InferenceJobItem.objects.exists()

        dead = InferenceJobFactory(pgcs=[galaxy.pgc], stale=True)
        inference_job_task.delay(dead.pk)
        dead.refresh_from_db()
        assert (dead.status, dead.live, dead.done, dead.progress) == ("succeeded", None, 1, 1.0)
        assert dead.heartbeat_at > dead.created_at

    def test_a_catalog_job_without_models_fails_with_the_reason(self, bob, django_capture_on_commit_callbacks):
        GalaxyFactory(with_image=True)
        with django_capture_on_commit_callbacks(execute=True):
            job = services.inference_job_create(kind=InferenceJob.Kind.CATALOG, user=bob)
        job.refresh_from_db()
        assert job.status == "failed" and "No inclination model is active" in job.error

    def test_job_list_in_the_admin_shows_progress(
        self, active_ensemble, bob, bob_client, django_capture_on_commit_callbacks
    ):
        galaxy = GalaxyFactory(with_image=True)
        with django_capture_on_commit_callbacks(execute=True):
            services.inference_job_create(kind=InferenceJob.Kind.PGC_LIST, user=bob, pgcs=[galaxy.pgc])
        html = bob_client.get(reverse("admin:inference_inferencejob_changelist")).content.decode()
        assert '<progress value="100"' in html


class TestPredictionBackstop:
    def test_the_beat_predicts_galaxies_whose_announcement_was_lost(self, active_ensemble):
        galaxy = GalaxyFactory(with_image=True)  # stored without announcing it, as when the broker lost the message
        no_image = GalaxyFactory()
        assert predict_missing.delay().get() == 1
        assert EnsemblePrediction.objects.filter(galaxy=galaxy).count() == 1
        assert predict_missing.delay().get() == 0  # nothing left: predicted galaxies are not predicted again
        assert not EnsemblePrediction.objects.filter(galaxy=no_image).exists()

    def test_without_models_it_waits(self):
        GalaxyFactory(with_image=True)
        assert predict_missing.delay().get() == 0
        assert not EnsemblePrediction.objects.exists()

    def test_it_is_on_the_beat_schedule(self, settings):
        assert "inference.tasks.predict_missing" in {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}


def test_scaled_output_models_from_the_original_service_are_converted(db):
    import keras

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    raw = keras.layers.Dense(1, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(0.5))(pooled)
    ModelVersionFactory(keras_model=keras.Model(inputs, raw), name="seed-style", output="scaled")
    # The original's models answer in [-1, 1] over 45-90 deg: 0.5 means 67.5 + 0.5 x 22.5.
    result = services.predict_image_bytes(data=galaxy_jpeg())
    assert result.members["seed-style"] == pytest.approx(78.75, abs=1e-3)
