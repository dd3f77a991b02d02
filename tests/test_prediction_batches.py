"""Newly stored images are predicted in batches: a handful of tasks for a burst, every image exactly once."""

from collections import Counter
from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.utils import timezone

from acquisition.services import image_store
from inference import tasks
from inference.models import DiscrepancyAlarm, EnsemblePrediction, PendingPrediction, Prediction
from inference.services import predictions
from tests import inference_fixtures
from tests.factories import GalaxyFactory, galaxy_jpeg

active_ensemble = inference_fixtures.active_ensemble
tiny_inference_settings = inference_fixtures.tiny_inference_settings

pytestmark = pytest.mark.django_db

MEMBERS = 4  # the active_ensemble fixture: three regression members and a rejection classifier


@pytest.fixture
def broker(monkeypatch):
    """Batch tasks sent to the broker are kept, not run: `work()` then runs them as a worker would, in order."""
    cache.delete(tasks.PENDING_FLAG)
    sent = []
    monkeypatch.setattr(tasks.predict_pending_task, "apply_async", lambda *args, **kwargs: sent.append(kwargs))

    def work() -> int:
        ran = 0
        while sent:
            sent.pop(0)
            tasks.predict_pending_task.apply()  # a batch that finds more queues the next into `sent`
            ran += 1
        return ran

    yield sent, work
    cache.delete(tasks.PENDING_FLAG)


@pytest.fixture
def predicted_images(monkeypatch):
    """How many times each image went through the ensemble."""
    seen = Counter()
    real = predictions.predict_images

    def spy(*, pairs, **kwargs):
        seen.update(image.pk for _, image in pairs)
        return real(pairs=pairs, **kwargs)

    monkeypatch.setattr(predictions, "predict_images", spy)
    return seen


def store(galaxies, django_capture_on_commit_callbacks):
    """Each galaxy's colour JPEG stored in its own transaction, as acquisition tasks do, commit callbacks run."""
    images = []
    for i, galaxy in enumerate(galaxies):
        with django_capture_on_commit_callbacks(execute=True):
            images.append(
                image_store(
                    galaxy=galaxy,
                    band="color",
                    format="jpeg",
                    data=galaxy_jpeg(seed=i, inclination=50 + i),
                    source="sdss",
                    pixel_scale=0.4,
                )
            )
    return images


def assert_each_predicted_once(images):
    assert EnsemblePrediction.objects.count() == len(images)
    assert set(EnsemblePrediction.objects.values_list("image_id", flat=True)) == {i.pk for i in images}
    assert Prediction.objects.count() == MEMBERS * len(images)
    assert DiscrepancyAlarm.objects.filter(status="open").count() == len(images)  # members 50/60/70: one each
    assert not PendingPrediction.objects.exists()


def test_thirty_stored_images_take_one_task_and_each_is_predicted_once(
    active_ensemble, broker, predicted_images, settings, django_capture_on_commit_callbacks
):
    sent, work = broker
    images = store(GalaxyFactory.create_batch(30), django_capture_on_commit_callbacks)
    # The first image asked for a batch that waits for the rest; the 29 others found it on its way.
    assert sent == [{"countdown": settings.GIZ_PREDICT_BATCH_WAIT_S}]
    assert PendingPrediction.objects.count() == 30
    assert work() == 1
    assert predicted_images == Counter({image.pk: 1 for image in images})
    assert_each_predicted_once(images)
    galaxy = images[0].galaxy
    galaxy.refresh_from_db()
    assert galaxy.predicted_inclination == pytest.approx(60.0, abs=1e-3)  # its priority and figures refreshed too


def test_a_burst_larger_than_a_batch_runs_in_full_batches(
    active_ensemble, broker, predicted_images, settings, django_capture_on_commit_callbacks
):
    settings.GIZ_INFERENCE_BATCH_SIZE = 8
    sent, work = broker
    images = store(GalaxyFactory.create_batch(30), django_capture_on_commit_callbacks)
    assert len(sent) == 1
    assert work() == 4  # 8 + 8 + 8 + 6: a full batch queues the next at once
    assert predicted_images == Counter({image.pk: 1 for image in images})
    assert_each_predicted_once(images)


def test_images_stored_while_a_batch_runs_get_the_next_batch(
    active_ensemble, broker, predicted_images, django_capture_on_commit_callbacks
):
    sent, work = broker
    galaxies = GalaxyFactory.create_batch(20)
    first = store(galaxies[:10], django_capture_on_commit_callbacks)
    assert work() == 1
    second = store(galaxies[10:], django_capture_on_commit_callbacks)
    assert len(sent) == 1 and work() == 1
    assert predicted_images == Counter({image.pk: 1 for image in first + second})
    assert_each_predicted_once(first + second)


def test_a_failure_in_the_middle_of_a_batch_loses_and_duplicates_nothing(
    active_ensemble, broker, predicted_images, django_capture_on_commit_callbacks
):
    sent, work = broker
    images = store(GalaxyFactory.create_batch(30), django_capture_on_commit_callbacks)
    real_check, checked = predictions.alarms_check, []

    def fails_at_the_twelfth(**kwargs):
        checked.append(kwargs["galaxy"].pk)
        if len(checked) == 12:
            raise ConnectionError("database gone in the middle of the batch")
        return real_check(**kwargs)

    with mock.patch.object(predictions, "alarms_check", fails_at_the_twelfth), pytest.raises(ConnectionError):
        work()
    # Eleven galaxies' rows had been written when it failed: all rolled back, every image still waits, unclaimed.
    assert not EnsemblePrediction.objects.exists() and not Prediction.objects.exists()
    assert not DiscrepancyAlarm.objects.exists()
    assert PendingPrediction.objects.filter(claim=None, claimed_until=None).count() == 30

    assert tasks.predict_missing.apply().get() == 30  # the backstop (or the next burst's task) takes them
    assert predicted_images == Counter({image.pk: 2 for image in images})  # tried once, stored once
    assert_each_predicted_once(images)
    assert tasks.predict_missing.apply().get() == 0


def test_a_killed_batch_comes_back_after_its_claim_expires_and_is_not_taken_before(
    active_ensemble, broker, predicted_images, django_capture_on_commit_callbacks
):
    sent, work = broker
    images = store(GalaxyFactory.create_batch(5), django_capture_on_commit_callbacks)
    # SIGKILL in the middle of the ensemble: no exception handler runs, the claim stays on the rows.
    with (
        mock.patch.object(predictions, "_pending_release"),
        mock.patch.object(predictions.ensemble_holder.Ensemble, "run_detailed", side_effect=SystemExit("killed")),
        pytest.raises(SystemExit),
    ):
        work()
    assert PendingPrediction.objects.exclude(claim=None).count() == 5
    assert tasks.predict_missing.apply().get() == 0  # claimed by a task that may still be running
    later = timezone.now() + timedelta(seconds=tasks.PENDING_HARD_S + 31)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert tasks.predict_missing.apply().get() == 5
    assert predicted_images == Counter({image.pk: 2 for image in images})
    assert_each_predicted_once(images)


def test_without_an_active_ensemble_the_images_wait_for_one(broker, django_capture_on_commit_callbacks):
    sent, work = broker
    store(GalaxyFactory.create_batch(3), django_capture_on_commit_callbacks)
    assert work() == 1
    assert PendingPrediction.objects.filter(claim=None).count() == 3
    inference_fixtures.make_ensemble()
    assert tasks.predict_missing.apply().get() == 3
    assert not PendingPrediction.objects.exists()


def test_an_unreadable_image_is_dropped_from_the_batch_and_the_others_are_stored(
    active_ensemble, broker, django_capture_on_commit_callbacks
):
    sent, work = broker
    images = store(GalaxyFactory.create_batch(4), django_capture_on_commit_callbacks)
    with open(images[1].file.path, "wb") as broken:
        broken.write(b"not an image")
    work()
    assert set(EnsemblePrediction.objects.values_list("image_id", flat=True)) == {images[i].pk for i in (0, 2, 3)}
    assert not PendingPrediction.objects.exists()
