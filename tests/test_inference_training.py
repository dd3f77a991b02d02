"""Training: pretraining command, retraining on labels, the once-only trigger, killed runs, the backstop."""

import os
import subprocess
import sys
import threading
import time
from io import StringIO

import numpy as np
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from inference import keras_training as training
from inference import services
from inference.architectures import build_sigma_regression_model
from inference.models import ModelVersion, TrainingRun
from inference.services import training as training_service
from inference.tasks import train_task
from labeling.models import ConsensusLabel
from tests import inference_fixtures
from tests.factories import GalaxyFactory, TrainingRunFactory, galaxy_jpeg
from tests.services import require_postgres, worker_starts

tiny_inference_settings = inference_fixtures.tiny_inference_settings


@pytest.fixture
def queued(monkeypatch):
    """Record train_task.delay calls instead of training (the trigger tests only count runs)."""
    calls = []
    monkeypatch.setattr(train_task, "delay", lambda run_id: calls.append(run_id))
    return calls


def labels(n: int, *, accepted: bool = True):
    for seed in range(n):
        galaxy = GalaxyFactory(with_image=True, image__seed=seed)
        ConsensusLabel.objects.create(
            galaxy=galaxy,
            status="accepted" if accepted or seed % 2 else "rejected",
            inclination=50.0 + 4 * seed if accepted or seed % 2 else None,
            n_votes=3,
        )


@pytest.mark.django_db
class TestPretrainAndTrain:
    def test_pretrain_then_retrain_after_a_killed_attempt(self, bob_client):
        err, out = StringIO(), StringIO()
        call_command("pretrain_ensemble", "--profile", "tiny", stdout=out, stderr=err)

        run = TrainingRun.objects.get()
        assert (run.status, run.trigger, run.live, run.progress) == ("succeeded", "pretrain", None, 1.0)
        assert "training run" in err.getvalue() and "100%" in err.getvalue()  # the progress bar
        assert f"Training run {run.pk}: Test RMS" in out.getvalue()
        active = ModelVersion.objects.filter(status="active")
        assert sorted(active.values_list("kind", flat=True)) == ["regression"] * 3 + ["rejection"]
        member = active.filter(kind="regression").first()
        for key in ("rms", "mae", "frac_gt5", "frac_gt10", "bins"):
            assert key in member.metrics
        assert member.metrics["ensemble"]["n"] == 6 and "rms" in member.metrics["baseline"]
        assert member.file.name.startswith(f"models/run-{run.pk}/") and member.file.name.endswith(".keras")
        assert set(run.plots) == {"predicted_vs_true", "residuals", "learning_curves"}
        assert all(default_storage.exists(p) for p in run.plots.values())
        assert run.metrics["promoted"] is True and run.metrics["active_ensemble_rms"] is None
        assert set(run.history) == set(ModelVersion.objects.values_list("name", flat=True))

        html = bob_client.get(reverse("admin:inference_trainingrun_change", args=[run.pk])).content.decode()
        assert default_storage.url(run.plots["residuals"]) in html and "<progress" in html
        html = bob_client.get(reverse("admin:inference_modelversion_change", args=[member.pk])).content.decode()
        assert "axial-ratio baseline, same images" in html and "RMS / MAE 45-55" in html

        result = services.predict_image_bytes(data=galaxy_jpeg())
        assert len(result.members) == 3 and 0 <= result.rejection_likelihood <= 1

        # Retraining on labels, as a worker sees it after the first attempt was killed half way:
        # the broker redelivers the task; the stray file of the dead attempt must not survive.
        first = set(active.values_list("pk", flat=True))
        labels(8, accepted=False)
        retrain = services.training_run_create(trigger="manual", queue=False)
        TrainingRun.objects.filter(pk=retrain.pk).update(status="running", attempts=1)
        stray = default_storage.save(f"models/run-{retrain.pk}/regression-half-written.keras", ContentFile(b"partial"))

        train_task(retrain.pk)

        retrain.refresh_from_db()
        assert (retrain.status, retrain.attempts, retrain.live) == ("succeeded", 2, None)
        assert not default_storage.exists(stray)
        assert retrain.n_labels > 0
        new = set(ModelVersion.objects.filter(training_run=retrain).values_list("pk", flat=True))
        assert len(new) == 4
        # Promoted only if no worse than the active ensemble on the same fixed test set.
        assert retrain.metrics["active_ensemble_rms"] is not None
        promoted = retrain.metrics["ensemble"]["rms"] <= retrain.metrics["active_ensemble_rms"] + 1e-9
        assert retrain.metrics["promoted"] is promoted
        now_active = set(ModelVersion.objects.filter(status="active").values_list("pk", flat=True))
        if promoted:
            assert now_active == new
            assert set(ModelVersion.objects.filter(pk__in=first).values_list("status", flat=True)) == {"retired"}
        else:
            assert now_active == first
            assert set(ModelVersion.objects.filter(pk__in=new).values_list("status", flat=True)) == {"candidate"}

    def test_a_second_training_is_refused_while_one_is_live(self):
        TrainingRunFactory()
        with pytest.raises(CommandError, match="only one training runs at a time"):
            call_command("train", stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
class TestTrigger:
    def test_retraining_starts_after_the_threshold_of_new_labels(self, settings, queued):
        settings.GIZ_RETRAIN_AFTER_LABELS = 3
        labels(2)
        assert services.training_maybe_trigger() is None
        labels(3)
        run = services.training_maybe_trigger()
        assert run is not None and run.trigger == "new_labels"
        # Nothing new since that run's cutoff: no further run even once it has finished.
        services.training_run_finish(run_id=run.pk, status=TrainingRun.Status.SUCCEEDED)
        assert services.training_maybe_trigger() is None

    def test_the_backstop_requeues_a_killed_run(self, settings, queued):
        run = TrainingRunFactory(trigger="new_labels", stale=True)
        from inference.tasks import training_backstop_task

        training_backstop_task()
        run.refresh_from_db()
        assert run.status == "queued" and "Re-queued" in run.message

    def test_the_backstop_is_a_beat_entry(self):
        entry = settings.CELERY_BEAT_SCHEDULE["training-backstop"]
        assert entry["task"] == "inference.tasks.training_backstop_task"


@pytest.mark.django_db(transaction=True)
def test_many_simultaneous_triggers_create_exactly_one_training_run(settings, queued):
    require_postgres()
    settings.GIZ_RETRAIN_AFTER_LABELS = 2
    labels(2)
    barrier = threading.Barrier(8)
    results = []

    def vote_arrives():
        try:
            barrier.wait()
            results.append(services.training_maybe_trigger())
        finally:
            connection.close()

    threads = [threading.Thread(target=vote_arrives) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert TrainingRun.objects.count() == 1
    assert len([r for r in results if r is not None]) == 1
    assert queued == [TrainingRun.objects.get().pk]


def nothing_trained() -> training_service.TrainingResult:
    """What a stubbed trainer returns: a finished run with no models to register."""
    return training_service.TrainingResult(
        models=[],
        input_size=64,
        input_mode="color",
        promote=False,
        message="nothing trained",
        history={},
        metrics={},
        plots={},
        n_labels=0,
        n_synthetic=0,
    )


@pytest.mark.django_db
class TestFollowUpRun:
    @pytest.fixture
    def labels_arrive_while_training(self, monkeypatch, settings):
        """A run whose training takes the labels arriving meanwhile (as votes would), then ends as `outcome`."""
        settings.GIZ_RETRAIN_AFTER_LABELS = 3

        def train(outcome):
            def execute(run, **kwargs):
                labels(3)  # created after the run's labels_cutoff: not in this run
                if outcome == "failed":
                    raise RuntimeError("out of memory")
                return nothing_trained()

            monkeypatch.setattr(training_service, "execute", execute)

        return train

    def test_labels_that_waited_start_the_next_run_when_the_live_one_finishes(
        self, labels_arrive_while_training, queued, django_capture_on_commit_callbacks
    ):
        labels_arrive_while_training("succeeded")
        first = services.training_run_create(trigger="manual", queue=False)
        with django_capture_on_commit_callbacks(execute=True):
            train_task(first.pk)
        follow_up = TrainingRun.objects.exclude(pk=first.pk).get()
        assert (follow_up.trigger, follow_up.live, queued) == ("new_labels", True, [follow_up.pk])

    def test_no_follow_up_after_a_failed_run(
        self, labels_arrive_while_training, queued, django_capture_on_commit_callbacks
    ):
        labels_arrive_while_training("failed")
        first = services.training_run_create(trigger="manual", queue=False)
        with django_capture_on_commit_callbacks(execute=True):
            train_task(first.pk)
        assert TrainingRun.objects.get().status == "failed" and queued == []


@pytest.mark.django_db(transaction=True)
def test_a_training_beats_while_an_epoch_makes_no_progress(monkeypatch, settings):
    """Only a dead process goes silent: a long epoch without progress reports still beats (from a thread)."""
    settings.GIZ_TRAINING_HEARTBEAT_S = 0.05
    seen = []

    def one_long_epoch(run, **kwargs):
        claimed_at = TrainingRun.objects.get(pk=run.pk).heartbeat_at
        time.sleep(0.5)
        seen.append(TrainingRun.objects.get(pk=run.pk).heartbeat_at > claimed_at)
        return nothing_trained()

    monkeypatch.setattr(training_service, "execute", one_long_epoch)
    run = services.training_run_create(trigger="manual", queue=False)
    train_task(run.pk)
    assert seen == [True]
    assert TrainingRun.objects.get(pk=run.pk).status == "succeeded"


@pytest.mark.django_db
class TestKilledRuns:
    def test_a_worker_starting_again_requeues_the_run_its_previous_incarnation_held_once(
        self, queued, django_capture_on_commit_callbacks
    ):
        # Killed half way on celery@a a moment ago: its heartbeat is fresh, so the backstop would wait for it.
        mine = TrainingRunFactory(running=True, attempts=1, worker="celery@a")
        with django_capture_on_commit_callbacks(execute=True):
            services.training_backstop()
            worker_starts("celery@b")  # another worker: not its run
        assert queued == [] and TrainingRun.objects.get(pk=mine.pk).status == "running"

        with django_capture_on_commit_callbacks(execute=True):
            worker_starts("celery@a")
            worker_starts("celery@a")  # queued already: not again
            services.training_backstop()  # nor by the backstop while its message waits
        mine.refresh_from_db()
        assert (queued, mine.status, mine.message) == ([mine.pk], "queued", "Re-queued (its worker restarted)")
        # Its message and the original one (redelivered by the broker later) start it once between them.
        assert services.training_run_claim(run_id=mine.pk, worker="celery@a").attempts == 2
        assert services.training_run_claim(run_id=mine.pk, worker="celery@c") is None

    def test_a_run_that_finished_is_left_alone_when_its_worker_starts_again(
        self, queued, django_capture_on_commit_callbacks
    ):
        run = TrainingRunFactory(running=True, attempts=1, worker="celery@a")
        services.training_run_finish(run_id=run.pk, status="succeeded")
        with django_capture_on_commit_callbacks(execute=True):
            worker_starts("celery@a")
        assert queued == [] and TrainingRun.objects.get(pk=run.pk).status == "succeeded"

    def test_a_run_whose_pool_process_died_alone_is_taken_over_at_once_by_its_worker(self):
        # The OOM killer took the pool process; its worker lives on and delivers the task again at once, while the
        # run's heartbeat is still fresh.
        with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as training:
            run = TrainingRunFactory(running=True, attempts=1, worker="celery@a", worker_pid=training.pid)
            assert services.training_run_claim(run_id=run.pk, worker="celery@a") is None  # still training
            training.kill()
        assert services.training_run_claim(run_id=run.pk, worker="celery@b") is None  # another host's process ids
        taken = services.training_run_claim(run_id=run.pk, worker="celery@a")
        assert (taken.attempts, taken.worker, taken.worker_pid) == (2, "celery@a", os.getpid())
        assert services.training_run_claim(run_id=run.pk, worker="celery@a") is None  # this process trains it now

    def test_a_redelivered_task_leaves_a_run_that_still_beats_alone(self):
        # The broker thinks the worker died and hands the task to another; the first still trains.
        run = TrainingRunFactory(running=True, attempts=1)
        train_task(run.pk)
        run.refresh_from_db()
        assert (run.status, run.attempts, run.live) == ("running", 1, True)
        assert not ModelVersion.objects.exists()

    def test_a_failing_run_leaves_no_model_and_frees_the_slot(self, monkeypatch):
        real_fit, calls = training.fit_member, []

        def fit_then_die(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise MemoryError("killed half way")
            return real_fit(*args, **kwargs)

        monkeypatch.setattr(training, "fit_member", fit_then_die)
        run = services.training_run_create(trigger="manual", queue=False)
        train_task(run.pk)
        run.refresh_from_db()
        assert run.status == "failed" and "killed half way" in run.error and run.live is None
        assert not ModelVersion.objects.exists()
        _, files = (
            default_storage.listdir(f"models/run-{run.pk}")
            if default_storage.exists(f"models/run-{run.pk}")
            else ([], [])
        )
        assert files == []
        assert services.training_run_create(trigger="manual", queue=False) is not None


def test_a_deadline_training_stops_after_the_last_epoch_that_ends_before_the_deadline(tmp_path, monkeypatch):
    # A clock that moves 25 s at each reading. The schedule reads it when an epoch begins and when it ends, so
    # epochs last 25 s and end at 75, 125, 175 and 225. A fifth would end at 275, past the deadline of 240: four
    # epochs, where stopping at the first epoch to end past the deadline would have run five.
    class Clock:
        now = 0.0

        def time(self):
            self.now += 25.0
            return self.now

    monkeypatch.setattr(training, "time", Clock())
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    split = training.Split(images, rng.uniform(45, 90, 8).astype(np.float32))
    history = training.fit_resumable(
        build_sigma_regression_model("tiny", input_size=32),
        train=split,
        val=split,
        checkpoint_dir=str(tmp_path / "backup"),
        started=0.0,
        until=240.0,
        verbose=0,
    )
    assert len(history["loss"]) == 4
