"""Inference writes: predictions and alarms, the model registry, training runs and inference jobs.

Reads live in inference.selectors; the process-wide ensemble in inference.ensemble; Keras training
in inference.training (Django-free) driven by inference.trainer.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from acquisition.models import GalaxyImage
from giz_site.exceptions import ApplicationError
from inference import ensemble as ensemble_holder
from inference import imaging, metrics
from inference.models import (
    DiscrepancyAlarm,
    EnsemblePrediction,
    InferenceJob,
    InferenceJobItem,
    ModelVersion,
    Prediction,
    TrainingRun,
)
from inference.selectors import labels_since_last_training
from labeling.models import ConsensusLabel, Galaxy

logger = logging.getLogger(__name__)

H5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class EnsembleResult:
    """What the active ensemble says about one image."""

    members: dict[str, float]
    median: float
    mean: float
    spread: float
    rejection_likelihood: float | None
    rejection_members: dict[str, float] = field(default_factory=dict)
    alarm_raised: bool = False
    model_versions: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ prediction


def _limits() -> imaging.Limits:
    return imaging.Limits(max_bytes=settings.GIZ_IMAGE_MAX_BYTES, max_pixels=settings.GIZ_IMAGE_MAX_PIXELS)


def _active_ensemble() -> ensemble_holder.Ensemble:
    ensemble = ensemble_holder.current()
    if ensemble is None:
        raise ApplicationError(
            "No inclination model is active yet; staff can run `manage.py pretrain_ensemble` or upload one.",
            code="no_active_models",
            status_code=503,
        )
    return ensemble


def _prepare(ensemble, decoded: list[imaging.DecodedImage], angles: list[float | None]) -> dict:
    """Each decoded image prepared once per input kind the ensemble's members need."""
    return {
        (g.input_size, g.input_mode): imaging.prepare_batch(
            decoded, size=g.input_size, mode=g.input_mode, position_angles=angles
        )
        for g in ensemble.groups
    }


def _largest_input(ensemble) -> int:
    return max(group.input_size for group in ensemble.groups)


def _results(ensemble, outputs: dict[str, np.ndarray], n: int) -> list[EnsembleResult]:
    regression = [m.name for m in ensemble.members if m.kind == "regression"]
    rejection = [m.name for m in ensemble.members if m.kind == "rejection"]
    results = []
    for i in range(n):
        members = {name: float(np.clip(outputs[name][i], 45.0, 90.0)) for name in regression}
        median, mean, spread = metrics.ensemble_summary(list(members.values()))
        reject = {name: float(np.clip(outputs[name][i], 0.0, 1.0)) for name in rejection}
        results.append(
            EnsembleResult(
                members=members,
                median=median,
                mean=mean,
                spread=spread,
                rejection_likelihood=float(np.mean(list(reject.values()))) if reject else None,
                rejection_members=reject,
                alarm_raised=spread > settings.GIZ_ALARM_SPREAD_DEG,
                model_versions=ensemble.model_versions,
            )
        )
    return results


def image_position_angle(decoded: imaging.DecodedImage) -> float | None:
    """The galaxy's PA measured on the image (the models expect the major axis horizontal)."""
    from inference import baseline

    try:
        return baseline.measure_axial_ratio(imaging.prepare_for_model(decoded, size=128)).position_angle
    except ValueError:
        return None  # no galaxy outline found: predict the image as it is


def predict_image_bytes(*, data: bytes, position_angle: float | None = None) -> EnsembleResult:
    """The active ensemble's answer for an uploaded image (ImageError for a bad image).

    Without a catalogue position angle, the angle is measured on the image itself.
    """
    ensemble = _active_ensemble()
    decoded = imaging.decode_for_model(data, size=_largest_input(ensemble), limits=_limits())
    if position_angle is None:
        position_angle = image_position_angle(decoded)
    prepared = _prepare(ensemble, [decoded], [position_angle])
    return _results(ensemble, ensemble.run(prepared), 1)[0]


def _color_images(galaxy_ids: list[int]) -> dict[int, GalaxyImage]:
    images = GalaxyImage.objects.filter(galaxy_id__in=galaxy_ids, band=GalaxyImage.Band.COLOR).order_by("format")
    out: dict[int, GalaxyImage] = {}
    for image in images:
        out.setdefault(image.galaxy_id, image)
    return out


def _read(image: GalaxyImage) -> bytes:
    with image.file.open("rb") as f:
        return f.read()


def predict_galaxy(*, galaxy: Galaxy, image: GalaxyImage | None = None, save: bool = True) -> EnsembleResult:
    """Predict from the galaxy's stored colour image; save the predictions and raise alarms when asked."""
    if image is None:
        image = _color_images([galaxy.pk]).get(galaxy.pk)
    if image is None:
        raise ApplicationError(f"{galaxy} has no stored colour image yet.", code="no_image", status_code=409)
    outcome = predict_galaxies(galaxies=[galaxy], images={galaxy.pk: image}, save=save)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def predict_galaxies(
    *, galaxies: list[Galaxy], images: dict[int, GalaxyImage] | None = None, save: bool = True
) -> list[EnsembleResult | ApplicationError | imaging.ImageError]:
    """Predict a batch of galaxies in one pass through the ensemble; per-galaxy errors are returned, not raised."""
    ensemble = _active_ensemble()
    largest = _largest_input(ensemble)
    if images is None:
        images = _color_images([g.pk for g in galaxies])
    outcomes: list = [None] * len(galaxies)
    decoded, angles, index = [], [], []
    for i, galaxy in enumerate(galaxies):
        image = images.get(galaxy.pk)
        if image is None:
            outcomes[i] = ApplicationError(
                f"{galaxy} has no stored colour image yet.", code="no_image", status_code=409
            )
            continue
        try:
            one = imaging.decode_for_model(_read(image), size=largest, limits=_limits())
        except imaging.ImageError as exc:
            outcomes[i] = exc
            continue
        except OSError as exc:
            outcomes[i] = ApplicationError(f"The stored image of {galaxy} cannot be read: {exc}", code="image_missing")
            continue
        decoded.append(one)
        angles.append(galaxy.position_angle if galaxy.position_angle is not None else image_position_angle(one))
        index.append(i)
    if decoded:
        results = _results(ensemble, ensemble.run(_prepare(ensemble, decoded, angles)), len(decoded))
        for i, result in zip(index, results, strict=True):
            outcomes[i] = result
        if save:
            predictions_save(
                ensemble=ensemble,
                items=[(galaxies[i], images[galaxies[i].pk], outcomes[i]) for i in index],
            )
    return outcomes


def predictions_save(*, ensemble, items: list[tuple[Galaxy, GalaxyImage, EnsembleResult]]) -> None:
    """Store member and ensemble predictions, raise alarms, then refresh the galaxies' label priority."""
    ids = {m.name: m.version_id for m in ensemble.members}
    consensus = {
        c.galaxy_id: c.inclination
        for c in ConsensusLabel.objects.filter(
            galaxy_id__in=[g.pk for g, _, _ in items], status=ConsensusLabel.Status.ACCEPTED
        )
    }
    with transaction.atomic():
        rows = []
        for galaxy, image, result in items:
            for name, value in result.members.items():
                rows.append(Prediction(galaxy=galaxy, image=image, model_version_id=ids[name], inclination=value))
            for name, value in result.rejection_members.items():
                rows.append(
                    Prediction(galaxy=galaxy, image=image, model_version_id=ids[name], rejection_likelihood=value)
                )
        Prediction.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["image", "model_version"],
            update_fields=["inclination", "rejection_likelihood", "created_at"],
        )
        summaries = EnsemblePrediction.objects.bulk_create(
            [
                EnsemblePrediction(
                    galaxy=galaxy,
                    image=image,
                    median=r.median,
                    mean=r.mean,
                    spread=r.spread,
                    rejection_likelihood=r.rejection_likelihood,
                    n_models=len(r.members),
                    members={**r.members, **{f"reject:{k}": v for k, v in r.rejection_members.items()}},
                )
                for galaxy, image, r in items
            ]
        )
        for (galaxy, _, result), summary in zip(items, summaries, strict=True):
            raised = alarms_check(galaxy=galaxy, summary=summary, consensus=consensus.get(galaxy.pk))
            result.alarm_raised = result.alarm_raised or raised
    for galaxy, _, _ in items:
        _priority_refresh(galaxy)


def _priority_refresh(galaxy: Galaxy) -> None:
    from labeling import services as labeling_services

    labeling_services.galaxy_priority_refresh(galaxy=galaxy)


# ------------------------------------------------------------------------------ alarms


def alarms_check(*, galaxy: Galaxy, summary: EnsemblePrediction, consensus: float | None) -> bool:
    """Open alarms for models disagreeing with each other or with the volunteers' consensus."""
    raised = False
    numbers = {"members": summary.members, "mean": summary.mean, "n_models": summary.n_models}
    if summary.spread > settings.GIZ_ALARM_SPREAD_DEG:
        raised |= _alarm_open(galaxy, DiscrepancyAlarm.Kind.ENSEMBLE_SPREAD, summary, consensus, numbers)
    if consensus is not None and abs(summary.median - consensus) > settings.GIZ_ALARM_HUMAN_DIFF_DEG:
        raised |= _alarm_open(galaxy, DiscrepancyAlarm.Kind.HUMAN_DISAGREEMENT, summary, consensus, numbers)
    return raised


def _alarm_open(galaxy, kind, summary, consensus, details) -> bool:
    """One open alarm per galaxy and kind (a DB constraint); a newer prediction updates its numbers."""
    fields = {
        "ensemble_prediction": summary,
        "ensemble_median": summary.median,
        "ensemble_spread": summary.spread,
        "consensus_inclination": consensus,
        "details": {
            **details,
            "thresholds": {"spread": settings.GIZ_ALARM_SPREAD_DEG, "human_diff": settings.GIZ_ALARM_HUMAN_DIFF_DEG},
        },
    }
    updated = DiscrepancyAlarm.objects.filter(galaxy=galaxy, kind=kind, status=DiscrepancyAlarm.Status.OPEN).update(
        **fields
    )
    if updated:
        return True
    try:
        with transaction.atomic():
            alarm = DiscrepancyAlarm.objects.create(galaxy=galaxy, kind=kind, **fields)
    except IntegrityError:  # a concurrent prediction opened it first
        return True
    if settings.GIZ_ALARM_EMAILS:
        from inference.tasks import alarm_email_task

        transaction.on_commit(lambda: alarm_email_task.delay(alarm.pk))
    return True


def alarm_email_send(*, alarm_id: int) -> bool:
    """E-mail staff (GIZ_ALARM_EMAILS) about a new alarm."""
    from django.core.mail import send_mail

    alarm = DiscrepancyAlarm.objects.select_related("galaxy").filter(pk=alarm_id).first()
    if alarm is None or not settings.GIZ_ALARM_EMAILS:
        return False
    consensus = f"{alarm.consensus_inclination:.1f}" if alarm.consensus_inclination is not None else "none yet"
    body = (
        f"{alarm.get_kind_display()} on {alarm.galaxy}.\n"
        f"Ensemble median {alarm.ensemble_median:.1f} deg, spread {alarm.ensemble_spread:.1f} deg, "
        f"volunteer consensus {consensus}.\nMembers: {alarm.details.get('members')}\n"
        f"Review it in the admin: /admin/inference/discrepancyalarm/{alarm.pk}/change/\n"
    )
    send_mail(
        f"[GIZ] {alarm.get_kind_display()}: {alarm.galaxy}",
        body,
        settings.DEFAULT_FROM_EMAIL,
        settings.GIZ_ALARM_EMAILS,
    )
    return True


def alarm_resolve(*, alarm: DiscrepancyAlarm, user, note: str) -> DiscrepancyAlarm:
    """Close an alarm with a note; resolving twice is refused."""
    updated = DiscrepancyAlarm.objects.filter(pk=alarm.pk, status=DiscrepancyAlarm.Status.OPEN).update(
        status=DiscrepancyAlarm.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=user, resolution_note=note
    )
    if not updated:
        raise ApplicationError("This alarm is already resolved.", code="already_resolved", status_code=409)
    alarm.refresh_from_db()
    _priority_refresh(alarm.galaxy)
    return alarm


# ------------------------------------------------------------------------------ model registry


def model_file_check(*, path: str, kind: str) -> dict:
    """Load a model file and check it fits this site; ApplicationError with the reason otherwise."""
    size = settings.GIZ_MODEL_INPUT_SIZE
    try:
        model = ensemble_holder.load_keras_file(path)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ApplicationError(
            f"The file could not be loaded as a Keras model ({reason}).", code="invalid_model_file"
        ) from exc
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != (size, size, 3):
        shapes = [tuple(i.shape) for i in inputs]
        raise ApplicationError(
            f"The model's input is {shapes}; this site feeds one {size} x {size} x 3 image batch "
            f"(None, {size}, {size}, 3).",
            code="wrong_input_shape",
            details={"input_shapes": [list(s) for s in shapes], "expected": [None, size, size, 3]},
        )
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) != 1 or tuple(outputs[0].shape[1:]) not in ((1,), ()):
        shapes = [tuple(o.shape) for o in outputs]
        raise ApplicationError(
            f"The model's output is {shapes}; a {kind} model must give one number per image (None, 1).",
            code="wrong_output_shape",
            details={"output_shapes": [list(s) for s in shapes]},
        )
    try:
        probe = np.asarray(model(np.full((2, size, size, 3), 0.1, np.float32), training=False)).reshape(-1)
    except Exception as exc:
        raise ApplicationError(f"The model fails on a test image: {exc}", code="invalid_model_file") from exc
    if not np.all(np.isfinite(probe)):
        raise ApplicationError("The model gives non-finite outputs on a test image.", code="invalid_model_file")
    if kind == ModelVersion.Kind.REJECTION and not np.all((probe >= 0) & (probe <= 1)):
        raise ApplicationError(
            "A rejection model must output a probability in [0, 1] (a sigmoid output).", code="wrong_output_range"
        )
    return {"architecture": model.name[:64], "parameters": int(model.count_params())}


def model_version_upload(
    *, file, name: str, kind: str, user, output: str = ModelVersion.Output.DEGREES, notes: str = ""
) -> ModelVersion:
    """Store an uploaded .keras/.h5 model as a candidate version after checking it loads and fits."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the model version a name.", code="invalid_name")
    if kind not in ModelVersion.Kind.values:
        raise ApplicationError(f"kind must be one of {ModelVersion.Kind.values}.", code="invalid_kind")
    if ModelVersion.objects.filter(name=name).exists():
        raise ApplicationError(f"A model version named {name!r} exists already.", code="name_taken", status_code=409)
    data = file.read()
    head = data[:8]
    if head.startswith(H5_MAGIC):
        fmt, suffix = ModelVersion.Format.H5, ".h5"
    elif head.startswith(ZIP_MAGIC):
        fmt, suffix = ModelVersion.Format.KERAS, ".keras"
    else:
        raise ApplicationError(
            "This is not a Keras model file: expected a .keras (zip) or .h5 (HDF5) file.", code="invalid_model_file"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"upload{suffix}")
        with open(path, "wb") as f:
            f.write(data)
        info = model_file_check(path=path, kind=kind)
    stored = default_storage.save(
        f"{settings.GIZ_MODELS_DIR}/uploads/{slugify(name) or 'model'}{suffix}", ContentFile(data)
    )
    try:
        return ModelVersion.objects.create(
            name=name,
            kind=kind,
            architecture=info["architecture"],
            file=stored,
            format=fmt,
            input_size=settings.GIZ_MODEL_INPUT_SIZE,
            input_mode="color",
            output=output,
            uploaded_by=user,
            notes=notes,
            metrics={"parameters": info["parameters"]},
        )
    except IntegrityError as exc:
        default_storage.delete(stored)
        raise ApplicationError(
            f"A model version named {name!r} exists already.", code="name_taken", status_code=409
        ) from exc


def model_version_activate(*, model_version: ModelVersion, user=None) -> ModelVersion:
    """Make a version part of the active ensemble (each process swaps its ensemble as a whole)."""
    if model_version.status == ModelVersion.Status.ACTIVE:
        return model_version
    if not default_storage.exists(model_version.file.name):
        raise ApplicationError(f"The file of {model_version.name} is missing from storage.", code="model_file_missing")
    ModelVersion.objects.filter(pk=model_version.pk).update(
        status=ModelVersion.Status.ACTIVE, activated_at=timezone.now()
    )
    model_version.refresh_from_db()
    transaction.on_commit(ensemble_holder.invalidate)
    logger.info("%s activated %s", user, model_version.name)
    return model_version


def model_version_retire(*, model_version: ModelVersion, user=None) -> ModelVersion:
    """Take a version out of the active ensemble (kept for comparison)."""
    if model_version.status == ModelVersion.Status.ACTIVE:
        regression_left = (
            ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE, kind=ModelVersion.Kind.REGRESSION)
            .exclude(pk=model_version.pk)
            .exists()
        )
        if model_version.kind == ModelVersion.Kind.REGRESSION and not regression_left:
            raise ApplicationError(
                "This is the last active regression model; activate another before retiring it.", code="last_model"
            )
    ModelVersion.objects.filter(pk=model_version.pk).update(status=ModelVersion.Status.RETIRED)
    model_version.refresh_from_db()
    transaction.on_commit(ensemble_holder.invalidate)
    return model_version


def ensemble_replace(*, new_versions: list[ModelVersion]) -> None:
    """Activate a trained set and retire the previous active set in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exclude(
            pk__in=[v.pk for v in new_versions]
        ).update(status=ModelVersion.Status.RETIRED)
        ModelVersion.objects.filter(pk__in=[v.pk for v in new_versions]).update(
            status=ModelVersion.Status.ACTIVE, activated_at=now
        )
        transaction.on_commit(ensemble_holder.invalidate)


# ------------------------------------------------------------------------------ training runs


def training_run_create(*, trigger: str, config: dict | None = None, queue: bool = True) -> TrainingRun | None:
    """A new live training run (None when one is live already: never two at a time), queued on commit."""
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                trigger=trigger, config=config or {}, labels_cutoff=timezone.now(), message="Queued"
            )
    except IntegrityError:  # the unique `live` column: another run is queued or running
        return None
    if queue:
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
    """Beat backstop: re-queue a live run whose worker died, else trigger if enough labels wait."""
    stale_before = timezone.now() - timedelta(seconds=settings.GIZ_TRAINING_STALE_S)
    stale = (
        TrainingRun.objects.filter(live=True, created_at__lt=stale_before)
        .exclude(heartbeat_at__gte=stale_before)
        .first()
    )
    if stale is not None:
        from inference.tasks import train_task

        TrainingRun.objects.filter(pk=stale.pk).update(status=TrainingRun.Status.QUEUED, message="Re-queued (stale)")
        transaction.on_commit(lambda: train_task.delay(stale.pk))
        return stale
    return training_maybe_trigger()


def training_run_claim(*, run_id: int) -> TrainingRun | None:
    """Atomically mark a live run as running (None if it finished, or another process is still on it).

    A broker redelivers a task whose worker it believes dead (Redis: after its visibility timeout), even
    while that worker still trains; a run whose heartbeat is fresh is left alone, so one run never
    trains in two processes.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.GIZ_TRAINING_STALE_S)
    claimable = Q(status=TrainingRun.Status.QUEUED) | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale_before)
    claimed = TrainingRun.objects.filter(claimable, pk=run_id, live=True).update(
        status=TrainingRun.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        progress=0.0,
        message="Starting",
        error="",
    )
    return TrainingRun.objects.get(pk=run_id) if claimed else None


def training_run_progress(*, run_id: int, progress: float, message: str) -> None:
    TrainingRun.objects.filter(pk=run_id).update(
        progress=min(max(progress, 0.0), 1.0), message=message[:255], heartbeat_at=timezone.now()
    )


def training_run_finish(*, run_id: int, status: str, error: str = "", **fields) -> None:
    """End a run: it stops being live (so the next one may start)."""
    TrainingRun.objects.filter(pk=run_id).update(
        status=status, live=None, finished_at=timezone.now(), error=error, **fields
    )


def training_run_execute(*, run_id: int, progress_callback=None) -> TrainingRun | None:
    """Run a claimed training (the Celery task and the management commands call this)."""
    from inference import trainer

    run = training_run_claim(run_id=run_id)
    if run is None:
        return None
    try:
        trainer.execute(run, progress_callback=progress_callback)
    except Exception as exc:
        logger.exception("Training run %s failed", run_id)
        trainer.discard_partial(run)
        training_run_finish(
            run_id=run_id, status=TrainingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000]
        )
    return TrainingRun.objects.get(pk=run_id)


# ------------------------------------------------------------------------------ inference jobs


def inference_job_create(
    *,
    kind: str,
    user,
    pgcs: list[int] | None = None,
    ra: float | None = None,
    dec: float | None = None,
    fov_arcmin: float | None = None,
) -> InferenceJob:
    """A batch inference job, queued on commit; the task predicts in batches and records progress."""
    if kind == InferenceJob.Kind.PGC_LIST:
        if not pgcs:
            raise ApplicationError("Give at least one PGC number.", code="invalid")
        params, total = {"pgcs": list(dict.fromkeys(int(p) for p in pgcs))}, len(set(pgcs))
    elif kind == InferenceJob.Kind.CATALOG:
        params, total = {}, Galaxy.objects.count()
    elif kind == InferenceJob.Kind.POSITION:
        if ra is None or dec is None or fov_arcmin is None:
            raise ApplicationError("A position job needs ra, dec and fov_arcmin.", code="invalid")
        params, total = {"ra": ra, "dec": dec, "fov_arcmin": fov_arcmin}, 1
    else:
        raise ApplicationError(f"Unknown job kind {kind!r}.", code="invalid")
    job = InferenceJob.objects.create(
        kind=kind, params=params, total=total, created_by=user if getattr(user, "pk", None) else None
    )
    from inference.tasks import inference_job_task

    transaction.on_commit(lambda: inference_job_task.delay(job.pk))
    return job


def _job_galaxies(job: InferenceJob):
    """The job's galaxies in a stable order, as (pgc, galaxy or None) batches."""
    if job.kind == InferenceJob.Kind.PGC_LIST:
        pgcs = job.params["pgcs"]
        for start in range(0, len(pgcs), settings.GIZ_INFERENCE_BATCH_SIZE):
            chunk = pgcs[start : start + settings.GIZ_INFERENCE_BATCH_SIZE]
            found = Galaxy.objects.in_bulk(chunk, field_name="pgc")
            yield [(pgc, found.get(pgc)) for pgc in chunk]
    elif job.kind == InferenceJob.Kind.CATALOG:
        last = 0
        while True:
            chunk = list(Galaxy.objects.filter(pk__gt=last).order_by("pk")[: settings.GIZ_INFERENCE_BATCH_SIZE])
            if not chunk:
                return
            last = chunk[-1].pk
            yield [(g.pgc, g) for g in chunk]
    else:
        from acquisition.services import galaxy_from_position

        p = job.params
        galaxy = galaxy_from_position(ra=p["ra"], dec=p["dec"], fov_arcmin=p["fov_arcmin"])
        yield [(galaxy.pgc, galaxy)]


def galaxy_color_image_ensure(*, galaxy: Galaxy) -> None:
    """Fetch a missing colour image synchronously (position jobs, API requests for galaxies never acquired).

    Raises ApplicationError (permanent or transient) when the image cannot be had.
    """
    if GalaxyImage.objects.filter(galaxy=galaxy, band=GalaxyImage.Band.COLOR).exists():
        return
    from acquisition.services import galaxy_acquire_now

    galaxy_acquire_now(galaxy=galaxy)
    galaxy.refresh_from_db()


def inference_job_run(*, job_id: int, progress_callback=None) -> InferenceJob | None:
    """Work through a job batch by batch; resumable (galaxies already done are skipped)."""
    claimed = InferenceJob.objects.filter(
        pk=job_id, status__in=[InferenceJob.Status.QUEUED, InferenceJob.Status.RUNNING]
    ).update(status=InferenceJob.Status.RUNNING, started_at=timezone.now())
    if not claimed:
        return None
    job = InferenceJob.objects.get(pk=job_id)
    try:
        _active_ensemble()
        finished = set(InferenceJobItem.objects.filter(job=job).values_list("pgc", flat=True))
        for batch in _job_galaxies(job):
            batch = [(pgc, g) for pgc, g in batch if pgc not in finished]
            if not batch:
                continue
            items, todo = [], []
            for pgc, galaxy in batch:
                if galaxy is None:
                    items.append(InferenceJobItem(job=job, pgc=pgc, status="failed", reason="Unknown PGC number."))
                    continue
                # Table jobs (inference.table_jobs) also fetch what is missing.
                if job.kind == InferenceJob.Kind.POSITION or job.params.get("acquire"):
                    try:
                        galaxy_color_image_ensure(galaxy=galaxy)
                    except ApplicationError as exc:
                        items.append(
                            InferenceJobItem(job=job, galaxy=galaxy, pgc=pgc, status="failed", reason=exc.message[:255])
                        )
                        continue
                todo.append(galaxy)
            if todo:
                for galaxy, outcome in zip(todo, predict_galaxies(galaxies=todo), strict=True):
                    if isinstance(outcome, EnsembleResult):
                        items.append(
                            InferenceJobItem(
                                job=job,
                                galaxy=galaxy,
                                pgc=galaxy.pgc,
                                status="ok",
                                median=outcome.median,
                                mean=outcome.mean,
                                spread=outcome.spread,
                                rejection_likelihood=outcome.rejection_likelihood,
                                members=outcome.members,
                                alarm_raised=outcome.alarm_raised,
                            )
                        )
                    else:
                        reason = getattr(outcome, "message", None) or getattr(outcome, "reason", str(outcome))
                        items.append(
                            InferenceJobItem(
                                job=job, galaxy=galaxy, pgc=galaxy.pgc, status="failed", reason=reason[:255]
                            )
                        )
            with transaction.atomic():
                InferenceJobItem.objects.bulk_create(items, ignore_conflicts=True)
                ok = sum(1 for i in items if i.status == "ok")
                InferenceJob.objects.filter(pk=job.pk).update(done=F("done") + ok, failed=F("failed") + len(items) - ok)
            if progress_callback:
                progress_callback(len(items))
    except ApplicationError as exc:
        InferenceJob.objects.filter(pk=job.pk).update(
            status=InferenceJob.Status.FAILED, error=exc.message, finished_at=timezone.now()
        )
        return InferenceJob.objects.get(pk=job.pk)
    InferenceJob.objects.filter(pk=job.pk).update(status=InferenceJob.Status.DONE, finished_at=timezone.now())
    return InferenceJob.objects.get(pk=job.pk)
