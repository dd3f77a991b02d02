"""Predicting images and galaxies with the active ensemble, and storing the predictions (upserts)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from acquisition.models import GalaxyImage
from giz_site.exceptions import ApplicationError
from inference import baseline, imaging, metrics
from inference import ensemble as ensemble_holder
from inference.models import EnsemblePrediction, PendingPrediction, Prediction
from inference.services.alarms import alarms_check, galaxy_priority_refresh
from labeling.models import ConsensusLabel, Galaxy

logger = logging.getLogger(__name__)


@dataclass
class EnsembleResult:
    """What the active ensemble says about one image."""

    members: dict[str, float]
    median: float
    mean: float
    spread: float
    rejection_likelihood: float | None
    # 1-sigma uncertainty (deg): the members' calibrated learned sigma in quadrature with their spread.
    sigma: float | None = None
    rejection_members: dict[str, float] = field(default_factory=dict)
    alarm_raised: bool = False
    model_versions: list[str] = field(default_factory=list)
    # Provenance: the members' model version ids by name, and when the answer was computed.
    model_version_ids: dict[str, int] = field(default_factory=dict)
    predicted_at: datetime | None = None


def ensemble_key(ids) -> str:
    """The key of the ensemble made of these model version ids: their sorted ids ("3,7,12")."""
    return ",".join(str(pk) for pk in sorted(ids))


def image_limits() -> imaging.Limits:
    """The site's limits on an image to decode (GIZ_IMAGE_MAX_BYTES, GIZ_IMAGE_MAX_PIXELS)."""
    return imaging.Limits(max_bytes=settings.GIZ_IMAGE_MAX_BYTES, max_pixels=settings.GIZ_IMAGE_MAX_PIXELS)


def active_ensemble() -> ensemble_holder.Ensemble:
    ensemble = ensemble_holder.current()
    if ensemble is None:
        raise ApplicationError(
            "No inclination model is active yet; staff can run `manage.py pretrain_ensemble` or upload one.",
            code="no_active_models",
            status_code=503,
        )
    return ensemble


def _prepare(
    ensemble,
    decoded: list[imaging.DecodedImage],
    angles: list[float | None],
    bands: list[imaging.DecodedImage | None] | None = None,
) -> dict:
    """Each image prepared once per input kind the ensemble's members need.

    `decoded` is each galaxy's picture (colour JPEG, or a FITS cube); `bands` its float g, r, i planes when it
    has them (None otherwise), which only the flux members read: they see only the rows that have them.
    """
    bands = bands if bands is not None else [d if _has_flux_bands(d) else None for d in decoded]
    prepared = {}
    for g in ensemble.groups:
        key = (g.input_size, g.input_mode)
        if g.input_mode == "flux":
            rows = [i for i, b in enumerate(bands) if b is not None]
            images = imaging.prepare_batch(
                [bands[i] for i in rows], size=g.input_size, mode="flux", position_angles=[angles[i] for i in rows]
            )
            prepared[key] = (images, rows)
        else:
            prepared[key] = imaging.prepare_batch(decoded, size=g.input_size, mode=g.input_mode, position_angles=angles)
    return prepared


def _has_flux_bands(decoded: imaging.DecodedImage) -> bool:
    """A FITS cube with g, r and i (an upload can be one): the flux members can read it."""
    return decoded.kind == "bands" and set(imaging.FLUX_BANDS) <= set(decoded.bands)


def _largest_input(ensemble) -> int:
    return max(group.input_size for group in ensemble.groups)


def _results(
    ensemble, detailed: tuple[dict[str, np.ndarray], dict[str, np.ndarray]], n: int
) -> list[EnsembleResult | None]:
    """One result per image from the members that saw it (None when no regression member did)."""
    outputs, member_sigmas = detailed
    scales = {m.name: m.sigma_scale for m in ensemble.members}
    regression = [m.name for m in ensemble.members if m.kind == "regression"]
    rejection = [m.name for m in ensemble.members if m.kind == "rejection"]
    version_ids = {m.name: m.version_id for m in ensemble.members}
    predicted_at = timezone.now()
    results = []
    for i in range(n):
        # Members whose input this image lacks answered NaN: the others make the answer.
        seen = [name for name in regression if np.isfinite(outputs[name][i])]
        if not seen:
            results.append(None)
            continue
        members = {name: float(np.clip(outputs[name][i], 45.0, 90.0)) for name in seen}
        median, mean, spread = metrics.ensemble_summary(list(members.values()))
        reject = {
            name: float(np.clip(outputs[name][i], 0.0, 1.0)) for name in rejection if np.isfinite(outputs[name][i])
        }
        learned = [scales[name] * float(member_sigmas[name][i]) for name in seen if member_sigmas[name][i] > 0]
        # Members without a sigma head (older uploads) leave only the spread to go on.
        learned_rms = float(np.sqrt(np.mean(np.square(learned)))) if learned else 0.0
        sigma = float(np.hypot(learned_rms, spread))
        rejection_likelihood = float(np.mean(list(reject.values()))) if reject else None
        if rejection_likelihood is not None:
            # An image that is probably not a galaxy gets a sigma as wide as its likelihood says.
            sigma = metrics.sigma_with_rejection(median, sigma, rejection_likelihood)
        results.append(
            EnsembleResult(
                members=members,
                median=median,
                mean=mean,
                spread=spread,
                sigma=sigma,
                rejection_likelihood=rejection_likelihood,
                rejection_members=reject,
                alarm_raised=spread > settings.GIZ_ALARM_SPREAD_DEG,
                model_versions=ensemble.model_versions,
                model_version_ids=version_ids,
                predicted_at=predicted_at,
            )
        )
    return results


def image_position_angle(decoded: imaging.DecodedImage) -> float | None:
    """The galaxy's PA measured on the image (the models expect the major axis horizontal)."""
    try:
        return baseline.measure_axial_ratio(imaging.prepare_for_model(decoded, size=128)).position_angle
    except ValueError:
        return None  # no galaxy outline found: predict the image as it is


def model_input(data: bytes, *, size: int, position_angle: float | None) -> tuple[imaging.DecodedImage, float | None]:
    """An image's bytes -> the image decoded for the models and the angle that turns its major axis horizontal.

    The one way from a stored or uploaded image to what the models see, for prediction and training alike
    (imaging.prepare_batch / prepare_for_model then make each model's input): the catalogue's position angle
    when there is one, else the angle measured on the image. ImageError for a bad image.
    """
    decoded = imaging.decode_for_model(data, size=size, limits=image_limits())
    if position_angle is None:
        position_angle = image_position_angle(decoded)
    return decoded, position_angle


def predict_image_bytes(*, data: bytes, position_angle: float | None = None) -> EnsembleResult:
    """The active ensemble's answer for an uploaded image (ImageError for a bad image).

    Without a catalogue position angle, the angle is measured on the image itself.
    """
    ensemble = active_ensemble()
    decoded, position_angle = model_input(data, size=_largest_input(ensemble), position_angle=position_angle)
    prepared = _prepare(ensemble, [decoded], [position_angle])
    result = _results(ensemble, ensemble.run_detailed(prepared, n=1), 1)[0]
    if result is None:
        raise _no_member_reads(what="this image")
    return result


def _no_member_reads(*, what: str) -> ApplicationError:
    return ApplicationError(
        f"No active model reads {what}: the active ensemble only has members for FITS g, r, i stamps.",
        code="no_model_for_input",
        status_code=422,
    )


def _color_images(galaxy_ids: list[int]) -> dict[int, GalaxyImage]:
    images = GalaxyImage.objects.filter(galaxy_id__in=galaxy_ids, band=GalaxyImage.Band.COLOR).order_by("format")
    out: dict[int, GalaxyImage] = {}
    for image in images:
        out.setdefault(image.galaxy_id, image)
    return out


def _read(image: GalaxyImage) -> bytes:
    with image.file.open("rb") as f:
        return f.read()


def band_stamps_of(galaxy_ids: list[int]) -> dict[int, dict[str, GalaxyImage]]:
    """The g, r, i FITS stamps of these galaxies (only galaxies with all three)."""
    found: dict[int, dict[str, GalaxyImage]] = {}
    for image in GalaxyImage.objects.filter(
        galaxy_id__in=galaxy_ids, band__in=imaging.FLUX_BANDS, format=GalaxyImage.Format.FITS
    ):
        found.setdefault(image.galaxy_id, {})[image.band] = image
    return {gid: images for gid, images in found.items() if set(images) == set(imaging.FLUX_BANDS)}


def band_cube(images: dict[str, GalaxyImage], *, size: int) -> imaging.DecodedImage:
    """One galaxy's g, r, i stamps as one float cube (ImageError or OSError when one cannot be read)."""
    planes = [imaging.decode_for_model(_read(images[b]), size=size, limits=image_limits()) for b in imaging.FLUX_BANDS]
    return imaging.bands_from_planes(planes, imaging.FLUX_BANDS)


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
    """Predict a batch of galaxies in one pass through the ensemble; per-galaxy errors are returned, not raised.

    Each galaxy is read from its colour image (`images`, by default the stored one).
    """
    if images is None:
        images = _color_images([g.pk for g in galaxies])
    return predict_images(pairs=[(galaxy, images.get(galaxy.pk)) for galaxy in galaxies], save=save)


def predict_images(
    *, pairs: list[tuple[Galaxy, GalaxyImage | None]], save: bool = True
) -> list[EnsembleResult | ApplicationError | imaging.ImageError]:
    """Predict (galaxy, image) pairs in one pass through the ensemble; per-image errors are returned, not raised.

    A galaxy may come more than once (a JPEG and a PNG colour image): each image gets its own prediction. When
    the ensemble has flux members and the galaxy has g, r, i FITS stamps, they read those, and the answer
    combines every member that could read something. A galaxy whose FITS stamps are unreadable is still
    answered from its colour.
    """
    ensemble = active_ensemble()
    return _answer(ensemble, pairs, _inputs(ensemble, pairs, _stamps(ensemble, pairs)), save=save)


def predict_images_in_batches(
    *, pairs: list[tuple[Galaxy, GalaxyImage | None]], batch_size: int, save: bool = True
) -> Iterator[tuple[list[tuple[Galaxy, GalaxyImage | None]], list]]:
    """`predict_images` over consecutive batches of `pairs`, yielding (batch, outcomes) as each is answered.

    The next batch is read and prepared in a second thread while the models run on this one: TensorFlow
    releases the GIL, so image preparation (single-threaded Python) and the forward pass overlap instead of
    taking turns. Outcomes are those `predict_images` gives for the same batch.
    """
    ensemble = active_ensemble()
    batches = [pairs[start : start + batch_size] for start in range(0, len(pairs), batch_size)]
    if not batches:
        return
    stamps = _stamps(ensemble, pairs)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="giz-prepare") as pool:
        upcoming = pool.submit(_inputs, ensemble, batches[0], stamps)
        for k, batch in enumerate(batches):
            inputs = upcoming.result()
            if k + 1 < len(batches):
                upcoming = pool.submit(_inputs, ensemble, batches[k + 1], stamps)
            yield batch, _answer(ensemble, batch, inputs, save=save)


def _stamps(ensemble, pairs: list[tuple[Galaxy, GalaxyImage | None]]) -> dict[int, dict[str, GalaxyImage]]:
    """The g, r, i stamps of the pairs' galaxies when the ensemble has members that read them (one query)."""
    if "flux" not in ensemble.input_modes:
        return {}
    return band_stamps_of(sorted({g.pk for g, _ in pairs}))


@dataclass
class _Inputs:
    """A batch of pairs read, decoded and prepared for the ensemble (no database access: a thread may do it)."""

    outcomes: list  # the error of each pair that failed already, None for the others
    index: list[int]  # the pairs that have inputs, in the order of the prepared rows
    prepared: dict


def _inputs(
    ensemble, pairs: list[tuple[Galaxy, GalaxyImage | None]], stamps: dict[int, dict[str, GalaxyImage]]
) -> _Inputs:
    largest = _largest_input(ensemble)
    outcomes: list = [None] * len(pairs)
    decoded, angles, bands, index = [], [], [], []
    for i, (galaxy, image) in enumerate(pairs):
        if image is None:
            outcomes[i] = ApplicationError(
                f"{galaxy} has no stored colour image yet.", code="no_image", status_code=409
            )
            continue
        try:
            one, angle = model_input(_read(image), size=largest, position_angle=galaxy.position_angle)
        except imaging.ImageError as exc:
            outcomes[i] = exc
            continue
        except OSError as exc:
            outcomes[i] = ApplicationError(f"The stored image of {galaxy} cannot be read: {exc}", code="image_missing")
            continue
        cube = None
        if galaxy.pk in stamps:
            try:
                cube = band_cube(stamps[galaxy.pk], size=largest)
            except (imaging.ImageError, OSError) as exc:
                logger.warning("%s: FITS stamps unreadable, colour members only: %s", galaxy, exc)
        decoded.append(one)
        angles.append(angle)
        bands.append(cube)
        index.append(i)
    prepared = _prepare(ensemble, decoded, angles, bands) if decoded else {}
    return _Inputs(outcomes=outcomes, index=index, prepared=prepared)


def _answer(ensemble, pairs: list[tuple[Galaxy, GalaxyImage | None]], inputs: _Inputs, *, save: bool) -> list:
    """The ensemble's answers for a prepared batch; saved (with alarms) when asked."""
    outcomes = inputs.outcomes
    if inputs.index:
        n = len(inputs.index)
        results = _results(ensemble, ensemble.run_detailed(inputs.prepared, n=n), n)
        answered = []
        for i, result in zip(inputs.index, results, strict=True):
            outcomes[i] = result if result is not None else _no_member_reads(what=f"the images of {pairs[i][0]}")
            if result is not None:
                answered.append(i)
        if save and answered:
            predictions_save(ensemble=ensemble, items=[(*pairs[i], outcomes[i]) for i in answered])
    return outcomes


def predictions_save(*, ensemble, items: list[tuple[Galaxy, GalaxyImage, EnsembleResult]]) -> None:
    """Store member and ensemble predictions, raise alarms, then refresh the galaxies' label priority.

    Upserts: predicting an image again with the same models updates its rows instead of adding some.
    """
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
        key = ensemble_key(ids.values())
        summaries = EnsemblePrediction.objects.bulk_create(
            [
                EnsemblePrediction(
                    galaxy=galaxy,
                    image=image,
                    ensemble_key=key,
                    median=r.median,
                    mean=r.mean,
                    spread=r.spread,
                    sigma=r.sigma,
                    rejection_likelihood=r.rejection_likelihood,
                    n_models=len(r.members),
                    members={**r.members, **{f"reject:{k}": v for k, v in r.rejection_members.items()}},
                )
                for galaxy, image, r in items
            ],
            update_conflicts=True,
            unique_fields=["galaxy", "image", "ensemble_key"],
            update_fields=[
                "median",
                "mean",
                "spread",
                "sigma",
                "rejection_likelihood",
                "n_models",
                "members",
                "created_at",
            ],
        )
        for (galaxy, _, result), summary in zip(items, summaries, strict=True):
            raised = alarms_check(galaxy=galaxy, summary=summary, consensus=consensus.get(galaxy.pk))
            result.alarm_raised = result.alarm_raised or raised
    for galaxy, _, _ in items:
        galaxy_priority_refresh(galaxy=galaxy)


# ------------------------------------------------------------------------------------ newly stored images, batched


def predictions_pending_mark(*, image_ids: list[int]) -> None:
    """Mark colour images as waiting for a prediction; in the caller's transaction (the image's own).

    An image marked again (new bytes under the same row) loses any batch's claim, so the batch that is
    predicting its old bytes leaves the mark for the next one.
    """
    PendingPrediction.objects.bulk_create(
        [PendingPrediction(image_id=pk) for pk in image_ids],
        update_conflicts=True,
        unique_fields=["image"],
        update_fields=["claim", "claimed_until", "created_at"],
    )


def predictions_missing_mark(*, galaxy_ids: list[int]) -> int:
    """Mark the colour images of these galaxies as waiting (the backstop's finds); existing marks are kept."""
    image_ids = [image.pk for image in _color_images(galaxy_ids).values()]
    PendingPrediction.objects.bulk_create([PendingPrediction(image_id=pk) for pk in image_ids], ignore_conflicts=True)
    return len(image_ids)


@dataclass
class PendingBatch:
    """What one batch of waiting images came to."""

    claimed: int = 0
    predicted: int = 0
    failed: int = 0  # images that cannot be predicted (unreadable, undecodable): their marks are dropped
    waiting: bool = False  # no active ensemble: the marks stay until there is one


def _pending_claim(*, limit: int, lease_s: float) -> tuple[uuid.UUID, list[PendingPrediction]]:
    """Take up to `limit` unclaimed (or expired) marks for one batch, oldest first; rows others lock are skipped."""
    token, now = uuid.uuid4(), timezone.now()
    with transaction.atomic():
        ids = list(
            PendingPrediction.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .select_for_update(skip_locked=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:limit]
        )
        PendingPrediction.objects.filter(pk__in=ids).update(claim=token, claimed_until=now + timedelta(seconds=lease_s))
    return token, list(PendingPrediction.objects.filter(claim=token).select_related("image__galaxy"))


def _pending_release(token: uuid.UUID) -> None:
    PendingPrediction.objects.filter(claim=token).update(claim=None, claimed_until=None)


def predictions_pending_run(*, limit: int, lease_s: float) -> PendingBatch:
    """Predict up to `limit` waiting images in one pass through the ensemble, each exactly once.

    The marks are claimed for `lease_s` (longer than the calling task may live), so no other batch takes them;
    each is deleted in the transaction that stores its prediction. Any error before that commit rolls the batch
    back and releases the claim: every mark is still there for the next batch, no prediction or alarm is half
    stored, and predicting again is an upsert.
    """
    token, pending = _pending_claim(limit=limit, lease_s=lease_s)
    batch = PendingBatch(claimed=len(pending))
    if not pending:
        return batch
    if ensemble_holder.current() is None:
        _pending_release(token)
        batch.waiting = True
        return batch
    pairs = [(mark.image.galaxy, mark.image) for mark in pending]
    try:
        with transaction.atomic():
            outcomes = predict_images(pairs=pairs)
            # Only this batch's marks: one marked again meanwhile (new bytes) has lost the claim and stays.
            PendingPrediction.objects.filter(claim=token).delete()
    except BaseException:
        _pending_release(token)
        raise
    for (galaxy, _), outcome in zip(pairs, outcomes, strict=True):
        if isinstance(outcome, EnsembleResult):
            batch.predicted += 1
        else:
            batch.failed += 1
            logger.warning("No prediction for %s: %s", galaxy, getattr(outcome, "message", outcome))
    return batch
