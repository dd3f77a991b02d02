"""Surveys as the models see them: the active ensemble tested on a survey's consensus labels ("test in advance"),
the verdict that marks it as needing adaptation, and starting the adaptation run that fine-tunes the members to it.

Every automatic start happens once: a survey's first evaluation at GIZ_SURVEY_EVAL_MIN_LABELS labels and one per
survey after each training run that changes the ensemble are guarded by partial unique indexes on
SurveyEvaluation; an adaptation is a TrainingRun (one live at a time, its labels cutoff counting the labels it used),
exactly as retraining is. Tasks are queued after commit.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from acquisition.models import GalaxyImage
from acquisition.population import SurveyLook
from giz_site.exceptions import ApplicationError
from inference import ensemble as ensemble_holder
from inference import plots, survey_metrics
from inference.models import EnsemblePrediction, ModelVersion, SurveyEvaluation, TrainingRun
from inference.services.predictions import EnsembleResult, ensemble_key, predict_images_in_batches
from inference.services.training_runs import training_run_create
from labeling.models import ConsensusLabel, Survey
from labeling.selectors import survey_labels
from labeling.services import mark_needs_adaptation, reference_survey

logger = logging.getLogger(__name__)

REJECTED_STATUSES = (ConsensusLabel.Status.REJECTED, ConsensusLabel.Status.FACE_ON)


# ------------------------------------------------------------------------------------------------ evaluations


def survey_evaluation_create(
    *,
    survey: Survey,
    trigger: str,
    training_run: TrainingRun | None = None,
    user=None,
    queue: bool = True,
) -> SurveyEvaluation | None:
    """A queued evaluation of the active ensemble on `survey` (None when the database refuses it: one is live
    for the survey, or this automatic one happened already). Its task is sent after commit."""
    try:
        with transaction.atomic():
            evaluation = SurveyEvaluation.objects.create(
                survey=survey, trigger=trigger, training_run=training_run, created_by=user, message="Queued"
            )
    except IntegrityError:
        return None
    if queue:
        # Imported here: inference.tasks imports the services, a cycle at module level.
        from inference.tasks import survey_evaluate_task

        transaction.on_commit(lambda: survey_evaluate_task.delay(evaluation.pk))
    return evaluation


def survey_evaluation_request(*, survey: Survey, user=None, queue: bool = True) -> SurveyEvaluation:
    """Staff's evaluation (command, API, admin): refused with the reason when it cannot run."""
    if ensemble_holder.current() is None:
        raise ApplicationError(
            "No inclination model is active yet: there is nothing to evaluate.",
            code="no_active_models",
            status_code=409,
        )
    if not survey_labels(survey=survey, accepted_only=False).exists():
        raise ApplicationError(
            f"{survey.name} has no consensus labels yet: there is nothing to compare the models with.",
            code="no_labels",
            status_code=409,
        )
    evaluation = survey_evaluation_create(
        survey=survey, trigger=SurveyEvaluation.Trigger.MANUAL, user=user, queue=queue
    )
    if evaluation is None:
        live = SurveyEvaluation.objects.filter(survey=survey, live=True).first()
        raise ApplicationError(
            f"{live} is already queued or running; one evaluation per survey runs at a time.",
            code="evaluation_live",
            status_code=409,
            details={"evaluation_id": live.pk if live else None},
        )
    return evaluation


def surveys_maybe_evaluate() -> list[SurveyEvaluation]:
    """Evaluate each survey once when it first has GIZ_SURVEY_EVAL_MIN_LABELS accepted labels (called on every new
    label: surveys evaluated at the threshold already cost one indexed query in all, the rest a count that stops
    at the threshold)."""
    if ensemble_holder.current() is None:
        return []
    threshold = settings.GIZ_SURVEY_EVAL_MIN_LABELS
    started = []
    pending = Survey.objects.exclude(evaluations__trigger=SurveyEvaluation.Trigger.LABELS)
    for survey in pending:
        if survey_labels(survey=survey).order_by()[:threshold].count() < threshold:
            continue
        evaluation = survey_evaluation_create(survey=survey, trigger=SurveyEvaluation.Trigger.LABELS)
        if evaluation is not None:
            started.append(evaluation)
    return started


def surveys_evaluate_after_training(*, run: TrainingRun) -> list[SurveyEvaluation]:
    """After a run changed the active ensemble: evaluate every survey with enough labels (once per survey and run)."""
    threshold = settings.GIZ_SURVEY_EVAL_MIN_LABELS
    started = []
    for survey in Survey.objects.all():
        if survey_labels(survey=survey).order_by()[:threshold].count() < threshold:
            continue
        evaluation = survey_evaluation_create(
            survey=survey, trigger=SurveyEvaluation.Trigger.TRAINING_RUN, training_run=run
        )
        if evaluation is not None:
            started.append(evaluation)
    return started


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.GIZ_TRAINING_STALE_S)


def survey_evaluations_backstop() -> list[int]:
    """Re-queue live evaluations whose worker died or whose message the broker lost (beat, every minute)."""
    from inference.tasks import survey_evaluate_task  # cycle: inference.tasks imports the services

    stale = SurveyEvaluation.objects.stale(before=_stale_before())
    requeued = []
    for pk in list(stale.values_list("pk", flat=True)):
        # One conditional UPDATE, as for training runs: an evaluation a worker claimed since the read (fresh
        # heartbeat) no longer matches and keeps running alone. The heartbeat is stamped so the next minute's
        # backstop leaves the new message its time instead of sending another.
        if stale.filter(pk=pk).update(
            status=SurveyEvaluation.Status.QUEUED, heartbeat_at=timezone.now(), message="Re-queued"
        ):
            transaction.on_commit(lambda pk=pk: survey_evaluate_task.delay(pk))
            requeued.append(pk)
    return requeued


def _reference_rms(*, survey: Survey, key: str, versions: list[ModelVersion]) -> tuple[float | None, str]:
    """The figure a survey is compared with: the reference survey's latest evaluation of the same ensemble, else
    the members' own test RMS as their training or the shipped manifest recorded it."""
    reference = reference_survey()
    if survey.pk != reference.pk:
        latest = (
            SurveyEvaluation.objects.filter(
                survey=reference,
                ensemble_key=key,
                status=SurveyEvaluation.Status.SUCCEEDED,
                n_labels__gte=settings.GIZ_SURVEY_EVAL_MIN_LABELS,
            )
            .order_by("-created_at")
            .first()
        )
        if latest is not None and latest.rms is not None:
            return latest.rms, f"{reference.name}: evaluation {latest.pk} ({latest.n_labels} labels)"
    recorded = []
    for version in versions:
        metrics = version.metrics or {}
        if isinstance(metrics.get("ensemble"), dict) and metrics["ensemble"].get("rms") is not None:
            recorded.append(float(metrics["ensemble"]["rms"]))
        elif isinstance(metrics.get("shipped"), dict):
            values = [m["rms"] for m in metrics["shipped"].values() if isinstance(m, dict) and "rms" in m]
            if values:
                recorded.append(float(np.mean(values)))
    if recorded:
        return float(np.median(recorded)), "the members' test RMS on synthetic SDSS-like galaxies"
    return None, "no figure"


def _predictions(evaluation: SurveyEvaluation, labels: list[ConsensusLabel], key: str) -> tuple[dict, dict]:
    """(galaxy id -> (median, rejection likelihood or NaN), counts) from the galaxies' colour images of the
    evaluated survey: the stored answers of this ensemble where there are some (every acquired image is predicted
    when stored), the rest predicted now in batches. An evaluation only reads: what it predicts is not stored, so
    it raises no alarm and moves no priority (storing would cost a quarter of its time, per galaxy)."""
    survey = evaluation.survey
    ids = [label.galaxy_id for label in labels]
    answers: dict[int, tuple[float, float]] = {}
    for row in (
        EnsemblePrediction.objects.filter(galaxy_id__in=ids, ensemble_key=key, image__survey=survey)
        .order_by("galaxy_id", "-created_at")
        .values_list("galaxy_id", "median", "rejection_likelihood")
    ):
        answers.setdefault(row[0], (row[1], np.nan if row[2] is None else row[2]))
    stored = len(answers)
    SurveyEvaluation.objects.beat(evaluation.pk, done=stored, message=f"{stored} stored predictions reused")
    missing = [label.galaxy for label in labels if label.galaxy_id not in answers]
    images: dict[int, GalaxyImage] = {}
    for image in GalaxyImage.objects.filter(
        galaxy_id__in=[g.pk for g in missing], survey=survey, band=GalaxyImage.Band.COLOR
    ).order_by("format"):
        images.setdefault(image.galaxy_id, image)
    failed = done = 0
    pairs = [(galaxy, images.get(galaxy.pk)) for galaxy in missing]
    for batch, outcomes in predict_images_in_batches(
        pairs=pairs, batch_size=settings.GIZ_INFERENCE_BATCH_SIZE, save=False
    ):
        for (galaxy, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, EnsembleResult):
                likelihood = outcome.rejection_likelihood
                answers[galaxy.pk] = (outcome.median, np.nan if likelihood is None else likelihood)
            else:
                failed += 1
        done += len(batch)
        SurveyEvaluation.objects.beat(
            evaluation.pk,
            done=stored + done - failed,
            failed=failed,
            message=f"Predicting: {done}/{len(missing)}",
        )
    return answers, {"stored": stored, "predicted": len(missing) - failed, "failed": failed}


def survey_evaluation_run(*, evaluation_id: int, progress_callback=None) -> SurveyEvaluation | None:
    """Claim an evaluation and compute it (the task and the command call this; None if another process has it).

    The figures compare the active ensemble's median with each accepted consensus label; the verdict marks the
    survey as needing adaptation (or clears the mark) through labeling's service when it has enough labels.
    """
    if not SurveyEvaluation.objects.claim(evaluation_id, stale_before=_stale_before(), message="Starting"):
        return None
    evaluation = SurveyEvaluation.objects.select_related("survey").get(pk=evaluation_id)
    started = time.perf_counter()
    try:
        _evaluate(evaluation, progress_callback)
    except Exception as exc:
        logger.exception("Survey evaluation %s failed", evaluation_id)
        SurveyEvaluation.objects.finish(
            evaluation_id, status=SurveyEvaluation.Status.FAILED, error=f"{type(exc).__name__}: {exc}"
        )
    else:
        SurveyEvaluation.objects.filter(pk=evaluation_id).update(seconds=time.perf_counter() - started)
    return SurveyEvaluation.objects.get(pk=evaluation_id)


def _evaluate(evaluation: SurveyEvaluation, progress_callback) -> None:
    survey = evaluation.survey
    ensemble = ensemble_holder.current()
    if ensemble is None:
        raise ApplicationError("No inclination model is active.", code="no_active_models")
    ids = {m.name: m.version_id for m in ensemble.members}
    key = ensemble_key(ids.values())
    labels = list(survey_labels(survey=survey, accepted_only=False))
    SurveyEvaluation.objects.beat(evaluation.pk, total=len(labels), message=f"{len(labels)} labels")
    if progress_callback:
        progress_callback(0, len(labels))
    answers, sources = _predictions(evaluation, labels, key)
    if progress_callback:
        progress_callback(len(labels), len(labels))
    pairs = [
        (answers[label.galaxy_id][0], label.inclination)
        for label in labels
        if label.status == ConsensusLabel.Status.ACCEPTED and label.galaxy_id in answers
    ]
    predicted = np.array([p for p, _ in pairs], np.float64)
    consensus = np.array([c for _, c in pairs], np.float64)
    judged = [label for label in labels if label.galaxy_id in answers]
    figures = survey_metrics.evaluate(
        predicted,
        consensus,
        rejection_likelihood=[answers[label.galaxy_id][1] for label in judged],
        volunteers_rejected=[label.status in REJECTED_STATUSES for label in judged],
    )
    versions = list(ModelVersion.objects.filter(pk__in=ids.values()).order_by("pk"))
    reference = reference_survey()
    verdict, reference_rms = None, None
    if survey.pk == reference.pk:
        reason = "The reference survey: the others are compared with it."
    elif figures["n"] < settings.GIZ_SURVEY_EVAL_MIN_LABELS:
        reason = (
            f"{figures['n']} accepted labels: too few to decide (GIZ_SURVEY_EVAL_MIN_LABELS is "
            f"{settings.GIZ_SURVEY_EVAL_MIN_LABELS})."
        )
    else:
        reference_rms, source = _reference_rms(survey=survey, key=key, versions=versions)
        verdict = survey_metrics.adaptation_needed(
            survey_rms=figures["rms"], reference_rms=reference_rms, margin=settings.GIZ_SURVEY_EVAL_MARGIN_DEG
        )
        reason = f"{verdict.reason} Reference: {source}."
    figures["sources"] = sources
    figures["outlier_deg"] = survey_metrics.OUTLIER_DEG
    plot = ""
    if len(predicted):
        png = plots.predicted_vs_consensus(
            consensus, predicted, title=f"{survey.name}: {len(predicted)} labels", bins=figures["bins"]
        )
        plot = default_storage.save(f"evaluations/{survey.slug}-{evaluation.pk}.png", ContentFile(png))
    rejection = figures.get("rejection") or {}
    with transaction.atomic():
        SurveyEvaluation.objects.finish(
            evaluation.pk,
            status=SurveyEvaluation.Status.SUCCEEDED,
            message=(
                f"RMS {figures['rms']:.2f} deg on {figures['n']} labels" if figures["n"] else "No accepted labels"
            ),
            ensemble_key=key,
            model_versions=[{"id": v.pk, "name": v.name} for v in versions],
            n_labels=figures["n"],
            rms=figures["rms"],
            bias=figures["bias"],
            outlier_rate=figures["outlier_rate"],
            rejection_agreement=rejection.get("agreement"),
            bins=figures["bins"],
            figures=figures,
            reference_rms=reference_rms,
            needs_adaptation=None if verdict is None else verdict.value,
            verdict=reason,
            plot=plot,
        )
        if verdict is not None and (verdict.value or survey.needs_adaptation):
            mark_needs_adaptation(survey, verdict.value, f"Evaluation {evaluation.pk}: {reason}")


# ------------------------------------------------------------------------------------------------ adaptation


def survey_look(survey: Survey) -> SurveyLook:
    """The look synthetic galaxies of `survey` are rendered in: its pixel scale, with GIZ_SURVEY_LOOKS[slug]
    over SDSS's seeing, stretch and colours (the survey-look hook: a deployment describes each survey there)."""
    values = {"pixel_scale": survey.pixel_scale, **(settings.GIZ_SURVEY_LOOKS.get(survey.slug) or {})}
    try:
        return SurveyLook.from_dict(values)
    except (TypeError, ValueError) as exc:
        raise ApplicationError(
            f"GIZ_SURVEY_LOOKS[{survey.slug!r}] is not a valid survey look: {exc}", code="invalid_survey_look"
        ) from exc


def last_adaptation_cutoff(*, survey: Survey):
    """Labels of `survey` up to here were used by a finished or live adaptation to it (None: never adapted)."""
    return (
        TrainingRun.objects.filter(trigger=TrainingRun.Trigger.ADAPTATION, survey=survey)
        .exclude(status=TrainingRun.Status.FAILED)
        .aggregate(cutoff=Max("labels_cutoff"))["cutoff"]
    )


def survey_adaptation_check(*, survey: Survey) -> dict:
    """Why an adaptation to `survey` cannot start, as an ApplicationError; else its figures (labels, images)."""
    if survey.is_reference:
        raise ApplicationError(
            f"{survey.name} is the reference survey the models are trained on; adapt them to another survey.",
            code="reference_survey",
        )
    if TrainingRun.objects.filter(live=True).exists():
        live = TrainingRun.objects.filter(live=True).first()
        raise ApplicationError(
            f"{live} is queued or running; only one training runs at a time.",
            code="training_live",
            status_code=409,
            details={"training_run_id": live.pk if live else None},
        )
    labels = survey_labels(survey=survey)
    needed = settings.GIZ_SURVEY_ADAPT_MIN_LABELS
    n_labels = labels.order_by()[:needed].count()
    if n_labels < needed:
        raise ApplicationError(
            f"{survey.name} has {n_labels} accepted consensus labels; adaptation needs {needed} "
            "(GIZ_SURVEY_ADAPT_MIN_LABELS).",
            code="too_few_labels",
            details={"labels": n_labels, "needed": needed},
        )
    n_images = GalaxyImage.objects.filter(
        survey=survey, band=GalaxyImage.Band.COLOR, galaxy_id__in=labels.values("galaxy_id")
    ).count()
    if n_images < needed:
        raise ApplicationError(
            f"Only {n_images} of {survey.name}'s labelled galaxies have a stored colour image from it; adaptation "
            f"trains on {needed}. Acquire the images first.",
            code="no_images",
            details={"images": n_images, "needed": needed},
        )
    active = ModelVersion.objects.filter(
        status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.REGRESSION, input_mode="color"
    ).exclude(output=ModelVersion.Output.SCALED)
    if not active.exists():
        raise ApplicationError(
            "No active colour regression member to fine-tune: adaptation starts from the active weights.",
            code="no_active_models",
            status_code=409,
        )
    survey_look(survey)  # a broken look is refused now, not half way through the run
    return {"labels": n_labels, "images": n_images}


def survey_adaptation_create(
    *, survey: Survey, trigger: str = TrainingRun.Trigger.ADAPTATION, config: dict | None = None, queue: bool = True
) -> TrainingRun:
    """Start a run fine-tuning the active members to `survey` (ApplicationError with the reason when it cannot)."""
    survey_adaptation_check(survey=survey)
    run = training_run_create(
        trigger=TrainingRun.Trigger.ADAPTATION,
        config={**(config or {}), "survey": survey.slug},
        survey=survey,
        queue=queue,
    )
    if run is None:  # another run took the slot between the check and the insert
        raise ApplicationError(
            "A training run is queued or running; only one training runs at a time.",
            code="training_live",
            status_code=409,
        )
    return run


def surveys_maybe_adapt() -> TrainingRun | None:
    """Start an adaptation for a survey that needs one, once it has GIZ_SURVEY_ADAPT_MIN_LABELS accepted labels
    since its last adaptation (called on every new label, like the retraining trigger; the unique live run and the
    labels cutoff make it happen once)."""
    if TrainingRun.objects.filter(live=True).exists():
        return None
    needed = settings.GIZ_SURVEY_ADAPT_MIN_LABELS
    for survey in Survey.objects.filter(needs_adaptation=True, is_reference=False):
        labels = survey_labels(survey=survey)
        cutoff = last_adaptation_cutoff(survey=survey)
        if cutoff is not None:
            labels = labels.filter(created_at__gt=cutoff)
        if labels.order_by()[:needed].count() < needed:
            continue
        try:
            return survey_adaptation_create(survey=survey)
        except ApplicationError as exc:
            logger.info("No adaptation to %s yet: %s", survey, exc.message)
    return None
