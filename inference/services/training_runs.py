"""Training runs: one live at a time, claimed by one worker, re-queued when its worker dies."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from inference.models import ModelVersion, TrainingRun
from inference.selectors import labels_since_last_training
from inference.services.registry import ensemble_replace

if TYPE_CHECKING:  # at run time only the training process loads Keras
    from inference.services.training import TrainingResult

logger = logging.getLogger(__name__)


def training_run_create(
    *, trigger: str, config: dict | None = None, queue: bool = True, survey=None
) -> TrainingRun | None:
    """A new live training run (None when one is live already: never two at a time), queued on commit.

    `survey` is the survey an adaptation run fine-tunes to (inference.services.surveys starts those).
    """
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                trigger=trigger, config=config or {}, survey=survey, labels_cutoff=timezone.now(), message="Queued"
            )
    except IntegrityError:  # the unique `live` column: another run is queued or running
        return None
    if queue:
        # Imported here: inference.tasks imports the services, a cycle at module level.
        from inference.tasks import train_task

        transaction.on_commit(lambda: train_task.delay(run.pk))
    return run


def training_maybe_trigger() -> TrainingRun | None:
    """Start a retraining when GIZ_RETRAIN_AFTER_LABELS new consensus labels exist since the last one.

    Safe to call from every vote at once: the unique `live` column admits one queued/running run.
    """
    if TrainingRun.objects.filter(live=True).exists():
        return None
    threshold = settings.GIZ_RETRAIN_AFTER_LABELS
    if labels_since_last_training(at_most=threshold) < threshold:
        return None
    return training_run_create(trigger=TrainingRun.Trigger.NEW_LABELS)


def training_backstop() -> TrainingRun | None:
    """Beat backstop: re-queue a live run whose worker died, else trigger if enough labels wait.

    It finds the runs of workers that never come back (a lost machine); a worker that starts again under its old
    node name re-queues its own at once (training_runs_requeue_orphaned).
    """
    stale = TrainingRun.objects.stale(before=_stale_before())
    run = stale.first()
    if run is not None:
        _requeue(stale, run_id=run.pk, message="Re-queued (stale)")
        return run
    return training_maybe_trigger()


def training_runs_requeue_orphaned(*, worker: str) -> list[int]:
    """Re-queue at once the running runs claimed under the node name `worker`: called when a worker of that name
    starts, so they belong to its previous incarnation, which died with them (SIGKILL, OOM, a lost container).

    Celery requires node names to be unique among live workers, and the signal fires before the new worker takes
    any task, so none of them can still be training.
    """
    if not worker:
        return []
    orphaned = TrainingRun.objects.filter(live=True, status=TrainingRun.Status.RUNNING, worker=worker)
    requeued = []
    for pk in list(orphaned.values_list("pk", flat=True)):
        if _requeue(orphaned, run_id=pk, message="Re-queued (its worker restarted)"):
            logger.warning("Training run %s: re-queued, its worker %s restarted", pk, worker)
            requeued.append(pk)
    return requeued


def _requeue(runs: QuerySet[TrainingRun], *, run_id: int, message: str) -> bool:
    """Put the live run `run_id` back on the queue if `runs` (the filter that found it) still matches it (True).

    One conditional UPDATE: a run a worker claimed in between (running, fresh heartbeat) no longer matches and is
    left alone, so no second message can find it queued and train it in a second process. The heartbeat is stamped
    so the backstop leaves the run to its new message for GIZ_TRAINING_STALE_S (then sends another if that one was
    lost: the claim lets one message through).
    """
    # Imported here: inference.tasks imports the services, a cycle at module level.
    from inference.tasks import train_task

    requeued = runs.filter(pk=run_id).update(
        status=TrainingRun.Status.QUEUED, heartbeat_at=timezone.now(), message=message
    )
    if not requeued:
        return False
    transaction.on_commit(lambda: train_task.delay(run_id))
    return True


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.GIZ_TRAINING_STALE_S)


def training_run_claim(*, run_id: int, worker: str = "") -> TrainingRun | None:
    """Mark a live run as running in this process of `worker` (a Celery node name; empty for a command). None if
    it finished, or another process is still on it: one run never trains in two processes."""
    claimed = TrainingRun.objects.claim(
        run_id,
        stale_before=_stale_before(),
        dead=_died_on_this_worker(run_id=run_id, worker=worker),
        attempts=F("attempts") + 1,
        progress=0.0,
        message="Starting",
        worker=worker[:255],
        worker_pid=os.getpid() if worker else None,
    )
    return TrainingRun.objects.get(pk=run_id) if claimed else None


def _died_on_this_worker(*, run_id: int, worker: str) -> Q | None:
    """The run as it is if a process of this very worker was training it and is gone: a pool process killed alone
    (the OOM killer's usual pick), whose task the worker delivers again at once (acks_late, reject on worker lost).
    Its heartbeat is still fresh, so without this the run would wait for the backstop.

    Same node name, same host (node names are unique among live workers), so the process id says whether it lives.
    """
    if not worker:
        return None
    pid = (
        TrainingRun.objects.filter(pk=run_id, live=True, status=TrainingRun.Status.RUNNING, worker=worker)
        .values_list("worker_pid", flat=True)
        .first()
    )
    if pid is None or pid == os.getpid() or _process_alive(pid):
        return None
    return Q(status=TrainingRun.Status.RUNNING, worker=worker, worker_pid=pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def training_run_progress(*, run_id: int, progress: float, message: str) -> None:
    TrainingRun.objects.beat(run_id, progress=min(max(progress, 0.0), 1.0), message=message[:255])


def training_run_finish(*, run_id: int, status: str, error: str = "", **fields) -> None:
    """End a run: it stops being live (so the next one may start)."""
    TrainingRun.objects.finish(run_id, status=status, error=error, **fields)


@contextmanager
def _heartbeat(run_id: int):
    """Stamp the run's heartbeat from a thread while the body runs, so only a dead process goes silent.

    Progress updates beat too, but an epoch of the standard profile can outlast GIZ_TRAINING_STALE_S.
    """
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.GIZ_TRAINING_HEARTBEAT_S):
                try:
                    TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("Training run %s: heartbeat not written", run_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=beat, name=f"training-run-{run_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def training_run_execute(*, run_id: int, worker: str = "", progress_callback=None) -> TrainingRun | None:
    """Claim a run, train, and record what it produced (the Celery task and the management commands call this).

    `worker` is the Celery node name of the worker running it (recorded on the run; empty for a command).
    `progress_callback(fraction, message)`, if given, follows the run as its row does (the command's bar).
    """
    # Imported here: Keras, TensorFlow and matplotlib load only in the process that trains; web and
    # acquisition processes import these services too.
    from inference.services.training import discard_partial, execute

    run = training_run_claim(run_id=run_id, worker=worker)
    if run is None:
        return None

    def report(fraction: float, message: str) -> None:
        training_run_progress(run_id=run_id, progress=fraction, message=message)
        if progress_callback:
            progress_callback(fraction, message)

    try:
        with _heartbeat(run_id):
            result = execute(run, progress_callback=report)
        training_run_record(run=run, result=result)
    except Exception as exc:
        logger.exception("Training run %s failed", run_id)
        discard_partial(run)
        training_run_finish(
            run_id=run_id, status=TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000]
        )
        return TrainingRun.objects.get(pk=run_id)
    if progress_callback:
        progress_callback(1.0, "Done")
    # Labels that arrived while this run was live found the slot taken: their run starts now, not at the
    # next label or the backstop. After a failure the backstop retries, so a broken setup does not loop.
    # An adaptation waiting for the slot goes first (imported here: the surveys service starts runs through
    # this module).
    from inference.services.surveys import surveys_maybe_adapt

    if surveys_maybe_adapt() is None:
        training_maybe_trigger()
    return TrainingRun.objects.get(pk=run_id)


def training_run_record(*, run: TrainingRun, result: TrainingResult) -> list[ModelVersion]:
    """Register a finished run's models, swap the ensemble if they are to be promoted, and end the run: all in
    one transaction, so a run is in the registry whole or not at all."""
    with transaction.atomic():
        versions = [
            ModelVersion.objects.create(
                name=model.name,
                kind=model.kind,
                architecture=model.architecture,
                file=model.file,
                input_size=result.input_size,
                input_mode=model.input_mode or result.input_mode,
                metrics=model.metrics,
                plots=model.plots,
                n_labels=result.n_labels,
                n_synthetic=result.n_synthetic,
                training_run=run,
                initialized_from_id=model.initialized_from,
            )
            for model in result.models
        ]
        if result.promote:
            kept = list(ModelVersion.objects.filter(pk__in=result.kept_version_ids))
            ensemble_replace(new_versions=versions + kept)
            # The new ensemble is tested on every survey with enough labels (imported here: the surveys
            # service starts runs through this module).
            from inference.services.surveys import surveys_evaluate_after_training

            transaction.on_commit(lambda: surveys_evaluate_after_training(run=run))
        training_run_finish(
            run_id=run.pk,
            status=TrainingRun.Status.SUCCEEDED,
            progress=1.0,
            message=result.message,
            history=result.history,
            metrics=result.metrics,
            plots=result.plots,
            n_labels=result.n_labels,
            n_synthetic=result.n_synthetic,
        )
    return versions
