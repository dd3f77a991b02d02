"""A real Celery worker process (Redis broker, PostgreSQL) predicts a newly acquired galaxy."""

import pytest

from inference.models import DiscrepancyAlarm, EnsemblePrediction, Prediction
from tests import inference_fixtures
from tests.factories import GalaxyFactory
from tests.inference_fixtures import make_ensemble
from tests.services import broker_url, celery_worker, require_postgres, send_task, wait_for

tiny_inference_settings = inference_fixtures.tiny_inference_settings


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_predicts_a_new_galaxy_and_raises_the_alarm():
    require_postgres()
    url = broker_url("redis")
    make_ensemble((50.0, 60.0, 70.0))
    galaxy = GalaxyFactory(with_image=True)
    env = {"GIZ_MODEL_INPUT_SIZE": "32", "GIZ_TRAINING_PROFILE": "tiny"}
    with celery_worker(broker=url, queues="inference-test", extra_env=env, timeout=120):
        send_task(url, "inference.tasks.predict_galaxy_task", args=[galaxy.pk], queue="inference-test")
        summary = wait_for(
            lambda: EnsemblePrediction.objects.filter(galaxy=galaxy).first(), timeout=120, what="the prediction"
        )
    assert summary.median == pytest.approx(60.0, abs=1e-3) and summary.n_models == 3
    assert Prediction.objects.filter(galaxy=galaxy).count() == 4
    assert DiscrepancyAlarm.objects.filter(galaxy=galaxy, kind="ensemble_spread", status="open").exists()
