"""Shared by the train and pretrain_ensemble commands: run a training in this process with a progress bar."""

from django.core.management.base import CommandError
from tqdm import tqdm

from inference import services
from inference.models import TrainingRun


def run_training(command, *, trigger: str, config: dict, queue: bool) -> TrainingRun:
    run = services.training_run_create(trigger=trigger, config=config, queue=queue)
    if run is None:
        live = TrainingRun.objects.filter(live=True).first()
        raise CommandError(f"{live} is already queued or running; only one training runs at a time.")
    if queue:
        command.stdout.write(f"Queued training run {run.pk}; follow it in the admin (Inference > Training runs).")
        return run
    return follow_training(command, run)


def follow_training(command, run: TrainingRun) -> TrainingRun:
    """Execute a created run in this process behind a progress bar; CommandError if it fails."""
    bar = tqdm(total=1000, desc=f"training run {run.pk}", unit="‰", file=command.stderr)

    def progress(fraction: float, message: str) -> None:
        bar.update(max(0, round(fraction * 1000) - bar.n))
        bar.set_postfix_str(message[:60])

    run = services.training_run_execute(run_id=run.pk, progress_callback=progress)
    bar.close()
    if run.status != TrainingRun.Status.SUCCEEDED:
        raise CommandError(f"Training run {run.pk} failed: {run.error}")
    command.stdout.write(command.style.SUCCESS(f"Training run {run.pk}: {run.message}"))
    return run
