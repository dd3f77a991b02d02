"""A real worker killed with SIGKILL in the middle of a training run: the run finishes once the worker is back.

Default recovery settings (heartbeat, stale time, broker visibility timeout) and no beat: the only way back within
the test's timeout is the worker's own: the restarted worker re-queues the runs its previous incarnation held, and
a worker whose pool process alone was killed takes the run over when it delivers the task again.
"""

import os
import signal
import time

import pytest
from django.core.files.storage import default_storage

from inference import services
from inference.models import ModelVersion, TrainingRun
from inference.services.training import run_folder
from tests import inference_fixtures
from tests.services import broker_url, celery_worker, require_postgres, send_task, wait_for

tiny_inference_settings = inference_fixtures.tiny_inference_settings

# Long enough to be killed in the middle, short enough to finish after the restart.
SLOW_TINY_RUN = {"profile": "tiny", "epochs": 40, "n_synthetic": 64}
NODE = "training@giz-kill-test"  # what a supervisor restarts the worker under (-n name@%h in docs/DEPLOY.md)
# Generous: a loaded machine. Without the restart's re-queue the run waits for the broker's visibility timeout (an
# hour) and never comes back in it.
RECOVERY_TIMEOUT_S = 240


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_training_killed_with_its_worker_finishes_once_the_worker_restarts():
    require_postgres()
    url = broker_url("redis")
    env = {"GIZ_MODEL_INPUT_SIZE": "32", "GIZ_TRAINING_PROFILE": "tiny"}  # the run's size; recovery as shipped
    run = services.training_run_create(trigger="manual", config=SLOW_TINY_RUN, queue=False)
    with celery_worker(broker=url, extra_env=env, timeout=180, node_name=NODE) as worker:
        send_task(url, "inference.tasks.train_task", args=[run.pk])
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status="running", progress__gt=0.3).exists(),
            timeout=300,
            what="the run to be half way",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed_at = time.monotonic()
    killed = TrainingRun.objects.get(pk=run.pk)
    assert (killed.status, killed.live, killed.attempts, killed.worker) == ("running", True, 1, NODE)

    restarted_at = []  # when the second attempt was seen to start

    def succeeded() -> bool:
        status, attempts = TrainingRun.objects.filter(pk=run.pk).values_list("status", "attempts").get()
        if attempts == 2 and not restarted_at:
            restarted_at.append(time.monotonic())
        return status == "succeeded"

    with celery_worker(broker=url, extra_env=env, timeout=180, node_name=NODE):
        ready_at = time.monotonic()
        wait_for(succeeded, timeout=RECOVERY_TIMEOUT_S, what="the run to finish on the restarted worker")
        finished_at = time.monotonic()
    print(
        f"\nkill -> ready {ready_at - killed_at:.0f} s, ready -> attempt 2 started {restarted_at[0] - ready_at:.1f} s, "
        f"ready -> succeeded {finished_at - ready_at:.0f} s (kill -> succeeded {finished_at - killed_at:.0f} s)"
    )
    done = TrainingRun.objects.get(pk=run.pk)
    assert (done.status, done.attempts, done.live, done.worker) == ("succeeded", 2, None, NODE)
    versions = list(ModelVersion.objects.filter(training_run=run))
    assert len(versions) == 4  # nothing partial, nothing twice
    # Every file in the run's folder belongs to what it recorded: nothing the killed attempt half wrote survives.
    recorded = {v.file.name for v in versions} | set(done.plots.values())
    recorded |= {path for v in versions for path in (v.plots or {}).values()}
    folder = run_folder(done)
    _, files = default_storage.listdir(folder)
    assert files and {f"{folder}/{name}" for name in files} <= recorded


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_training_whose_pool_process_is_killed_alone_finishes_on_the_same_worker():
    """The OOM killer's usual pick: the pool process training, not the worker. The worker redelivers the task at
    once (acks_late, reject on worker lost) while the run's heartbeat is still fresh."""
    require_postgres()
    url = broker_url("redis")
    env = {"GIZ_MODEL_INPUT_SIZE": "32", "GIZ_TRAINING_PROFILE": "tiny"}
    run = services.training_run_create(trigger="manual", config=SLOW_TINY_RUN, queue=False)
    with celery_worker(broker=url, extra_env=env, timeout=180, node_name=NODE, pool="prefork") as worker:
        send_task(url, "inference.tasks.train_task", args=[run.pk])
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status="running", progress__gt=0.3).exists(),
            timeout=300,
            what="the run to be half way",
        )
        pid = TrainingRun.objects.get(pk=run.pk).worker_pid
        assert pid not in (None, worker.pid)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        restarted_at = []

        def succeeded() -> bool:
            status, attempts = TrainingRun.objects.filter(pk=run.pk).values_list("status", "attempts").get()
            if attempts == 2 and not restarted_at:
                restarted_at.append(time.monotonic())
            return status == "succeeded"

        wait_for(succeeded, timeout=RECOVERY_TIMEOUT_S, what="the run to finish in a new pool process")
        finished_at = time.monotonic()
        assert worker.poll() is None  # the worker itself lived throughout
    print(
        f"\npool process killed -> attempt 2 started {restarted_at[0] - killed_at:.1f} s, "
        f"-> succeeded {finished_at - killed_at:.0f} s"
    )
    done = TrainingRun.objects.get(pk=run.pk)
    assert (done.status, done.attempts, done.live, done.worker) == ("succeeded", 2, None, NODE)
    assert done.worker_pid != pid
    assert ModelVersion.objects.filter(training_run=run).count() == 4
