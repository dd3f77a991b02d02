"""A real worker killed with SIGKILL in the middle of a training run: the run resumes on a new worker."""

import signal
import time

import pytest

from inference import services
from inference.models import ModelVersion, TrainingRun
from tests import inference_fixtures
from tests.services import broker_url, celery_worker, require_postgres, send_task, wait_for

tiny_inference_settings = inference_fixtures.tiny_inference_settings

# Long enough to be killed in the middle, short enough to finish after the restart.
SLOW_TINY_RUN = {"profile": "tiny", "epochs": 40, "n_synthetic": 64}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_training_killed_with_its_worker_resumes_within_two_minutes_of_the_restart(settings, monkeypatch):
    require_postgres()
    url = broker_url("redis")
    env = {"GIZ_MODEL_INPUT_SIZE": "32", "GIZ_TRAINING_PROFILE": "tiny", "GIZ_TRAINING_HEARTBEAT_S": "1"}
    run = services.training_run_create(trigger="manual", config=SLOW_TINY_RUN, queue=False)
    with celery_worker(broker=url, extra_env=env, timeout=180) as worker:
        send_task(url, "inference.tasks.train_task", args=[run.pk])
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status="running", progress__gt=0.3).exists(),
            timeout=300,
            what="the run to be half way",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed = TrainingRun.objects.get(pk=run.pk)
    assert (killed.status, killed.live, killed.attempts) == ("running", True, 1)

    # Beat's backstop (every minute) finds the silent run; here with a short stale time to save the wait.
    settings.GIZ_TRAINING_STALE_S = 3
    time.sleep(4)
    monkeypatch.setattr(
        "inference.tasks.train_task.delay", lambda run_id: send_task(url, "inference.tasks.train_task", args=[run_id])
    )
    assert services.training_backstop().pk == run.pk
    with celery_worker(broker=url, extra_env=env, timeout=180):
        restarted = time.monotonic()
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status="succeeded").exists(),
            timeout=300,
            what="the re-queued run to finish",
        )
        recovered_s = time.monotonic() - restarted
    done = TrainingRun.objects.get(pk=run.pk)
    assert (done.attempts, done.live) == (2, None)
    assert ModelVersion.objects.filter(training_run=run).count() == 4  # nothing partial, nothing twice
    print(f"\nrecovered {recovered_s:.0f} s after the worker's restart")
    assert recovered_s < 120
