"""Inference reads: labels waiting for training, job results, alarms, versions to compare."""

from __future__ import annotations

from django.db.models import Exists, Max, OuterRef, QuerySet

from acquisition.models import GalaxyImage
from inference.models import (
    DiscrepancyAlarm,
    EnsemblePrediction,
    InferenceJob,
    InferenceJobItem,
    ModelVersion,
    TrainingRun,
)
from labeling.models import ConsensusLabel, Galaxy


def last_training_cutoff():
    """Labels up to this time were used by a finished or live training (None: never trained on labels)."""
    return (
        TrainingRun.objects.exclude(status=TrainingRun.Status.FAILED)
        .exclude(trigger=TrainingRun.Trigger.PRETRAIN)
        .aggregate(cutoff=Max("labels_cutoff"))["cutoff"]
    )


def labels_since_last_training(*, at_most: int | None = None) -> int:
    """New consensus labels (any status: rejections train the classifier) since the last training.

    `at_most` stops counting there: the trigger runs on every new label and only needs to know
    whether the threshold is reached, not to count a million-row table each time.
    """
    labels = ConsensusLabel.objects.all()
    cutoff = last_training_cutoff()
    if cutoff is not None:
        labels = labels.filter(created_at__gt=cutoff)
    if at_most is not None:
        labels = labels.order_by()[:at_most]
    return labels.count()


def inference_job_results(*, job: InferenceJob) -> QuerySet[InferenceJobItem]:
    """One row per galaxy of a job (pgc, status, reason, median, mean, spread, rejection, members, alarm)."""
    return InferenceJobItem.objects.filter(job=job)


def alarms_open() -> QuerySet[DiscrepancyAlarm]:
    return DiscrepancyAlarm.objects.filter(status=DiscrepancyAlarm.Status.OPEN).select_related("galaxy")


def galaxies_with_open_alarms() -> QuerySet:
    """Galaxy ids the labeling site should show volunteers first."""
    return alarms_open().values_list("galaxy_id", flat=True).distinct()


def model_versions_compare(*, ids: list[int]) -> list[ModelVersion]:
    return list(ModelVersion.objects.filter(pk__in=ids).select_related("training_run").order_by("kind", "name"))


def active_versions() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).order_by("kind", "name")


def ensemble_key_ids(key: str) -> list[int]:
    """The model version ids an EnsemblePrediction.ensemble_key names ("3,7,12" -> [3, 7, 12])."""
    return [int(part) for part in key.split(",") if part.isdigit()]


def model_version_names(*, ids) -> dict[int, str]:
    return dict(ModelVersion.objects.filter(pk__in=ids).values_list("pk", "name"))


def ensemble_predictions_latest(*, galaxy, limit: int) -> list[EnsemblePrediction]:
    """The galaxy's latest ensemble predictions, newest first."""
    return list(EnsemblePrediction.objects.filter(galaxy=galaxy).order_by("-created_at", "-id")[:limit])


def galaxies_without_prediction(*, limit: int) -> list[int]:
    """Ids of galaxies that have a colour image and no ensemble prediction at all, oldest first."""
    has_image = GalaxyImage.objects.filter(galaxy_id=OuterRef("pk"), band=GalaxyImage.Band.COLOR)
    predicted = EnsemblePrediction.objects.filter(galaxy_id=OuterRef("pk"))
    return list(
        Galaxy.objects.filter(Exists(has_image))
        .exclude(Exists(predicted))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
