"""Writes of the acquisition area: catalog import, storing images, acquiring galaxies, jobs."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import BooleanField, Case, F, Max, Q, QuerySet, Value, When
from django.utils import timezone

from acquisition import orientation, selectors
from acquisition.catalog import CatalogError, CatalogRow, RowError, catalog_parse
from acquisition.models import AcquisitionJob, AcquisitionJobItem, GalaxyImage, image_upload_to
from acquisition.sdss import HttpClient, SdssClient, SdssError, check_position, parse_rate
from acquisition.signals import color_image_stored
from acquisition.sources import HipsSource, ImageSource, SdssSource, TemplateSource
from giz_site.exceptions import ApplicationError
from labeling.models import Galaxy, Survey
from labeling.services.surveys import reference_survey

logger = logging.getLogger(__name__)

POSITION_PGC_BASE = 800_000_000  # ad-hoc positions; synthetic galaxies start at 900,000,000
EXTENSIONS = {GalaxyImage.Format.JPEG: "jpg", GalaxyImage.Format.PNG: "png", GalaxyImage.Format.FITS: "fits"}
PARTIAL_DIR = ".partial"  # inside MEDIA_ROOT: half-written files live here, never under their final name


# ------------------------------------------------------------------------------------ storing images


def _image_size(data: bytes, format: str) -> tuple[int, int]:
    if format == GalaxyImage.Format.FITS:
        from astropy.io import fits

        with fits.open(io.BytesIO(data)) as hdus:
            header = hdus[0].header
            return int(header["NAXIS1"]), int(header["NAXIS2"])
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _write_aside_then_move(name: str, data: bytes) -> str:
    """Write `data` under `name` so that readers see either nothing or the whole file."""
    try:
        final = Path(default_storage.path(name))
    except NotImplementedError:
        # Object stores (S3) publish an object only once its upload completes: already atomic.
        if default_storage.exists(name):  # content-addressed name: the same bytes are already there
            return name
        return default_storage.save(name, ContentFile(data))
    partial_dir = Path(settings.MEDIA_ROOT) / PARTIAL_DIR
    partial_dir.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_dir / f"{final.name}.{uuid.uuid4().hex}.part"
    try:
        with partial.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        partial.chmod(0o644)
        os.replace(partial, final)  # atomic on one filesystem
    finally:
        partial.unlink(missing_ok=True)
    return name


def image_is_intact(image: GalaxyImage) -> bool:
    """True when the stored file exists and its bytes still have the recorded SHA-256."""
    if not image.file or not default_storage.exists(image.file.name):
        return False
    digest = hashlib.sha256()
    with default_storage.open(image.file.name, "rb") as stored:
        for chunk in iter(lambda: stored.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest() == image.checksum


def image_store(
    *,
    galaxy: Galaxy,
    band: str,
    format: str,
    data: bytes,
    source: str,
    pixel_scale: float | None,
    predict: bool = True,
    survey_id: int | None = None,
) -> GalaxyImage:
    """The one place that writes image files: write aside then move, SHA-256 recorded, idempotent.

    The image belongs to `survey_id`, by default the galaxy's survey.

    Storing the same bytes again changes nothing; different bytes replace the file (the old one is
    deleted after commit). A new colour image is announced (acquisition.signals) unless `predict=False`.
    """
    checksum = hashlib.sha256(data).hexdigest()
    width, height = _image_size(data, format)
    with transaction.atomic():
        # One writer per galaxy at a time, so two workers never race on the same image row.
        Galaxy.objects.select_for_update().filter(pk=galaxy.pk).values_list("pk", flat=True).first()
        image = GalaxyImage.objects.filter(galaxy=galaxy, band=band, format=format).first()
        if image is not None and image.checksum == checksum and image_is_intact(image):
            return image
        filename = f"{galaxy.pgc}_{band}_{checksum[:16]}.{EXTENSIONS[format]}"
        survey_id = survey_id or galaxy.survey_id
        placeholder = GalaxyImage(galaxy=galaxy, survey_id=survey_id)
        name = _write_aside_then_move(image_upload_to(placeholder, filename), data)
        old_name = image.file.name if image is not None and image.file else None
        if image is None:
            image = GalaxyImage(galaxy=galaxy, band=band, format=format, survey_id=survey_id)
        image.file.name = name
        image.source, image.pixel_scale, image.checksum = source, pixel_scale, checksum
        image.survey_id = survey_id
        image.width, image.height = width, height
        if image.pk is None:
            image.save()
        else:
            image.save(update_fields=["file", "source", "pixel_scale", "checksum", "width", "height", "survey"])
        if old_name and old_name != name:
            transaction.on_commit(lambda: [default_storage.delete(n) for n in (old_name, horizontal_name(old_name))])
        if predict and band == GalaxyImage.Band.COLOR:
            color_image_stored.send(sender=GalaxyImage, galaxy_id=galaxy.pk, image_id=image.pk)
    return image


def horizontal_name(name: str) -> str:
    """Where the horizontal copy of the composite stored under `name` lives (it follows the composite's name,
    which changes with its bytes, so a new composite never shows an old copy)."""
    stem, _, _ = name.rpartition(".")
    return f"{stem or name}_horizontal.jpg"


def _rgb_pixels(name: str) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with default_storage.open(name, "rb") as handle, Image.open(handle) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def horizontal_angle(*, galaxy: Galaxy, pixels: np.ndarray | None = None) -> float | None:
    """The position angle the labeling page turns a galaxy's images by: the catalogue's, else the one measured
    on its colour composite (`pixels`, read from storage when not given); None when there is neither."""
    if galaxy.position_angle is not None:
        return galaxy.position_angle
    if pixels is None and galaxy.color_image:
        pixels = _rgb_pixels(galaxy.color_image.name)
    return orientation.position_angle_measure(pixels) if pixels is not None else None


def color_image_horizontal_ensure(*, galaxy: Galaxy, name: str, force: bool = False) -> str:
    """The composite `name` turned so the galaxy's major axis is horizontal, for the labeling page; its name.

    The angle is the catalogue's position angle, else the one measured on the image (acquisition.orientation);
    "" when neither exists or the image cannot be read (the page then shows the image as it is). Only the
    pixels travel: the angle is kept nowhere a volunteer can read it. Made once per composite (`force`: again,
    after a catalogue import changed the position angle).
    """
    if not name:
        return ""
    target = horizontal_name(name)
    if not force and default_storage.exists(target):
        return target
    from PIL import Image

    pixels = _rgb_pixels(name)
    angle = horizontal_angle(galaxy=galaxy, pixels=pixels)
    if pixels is None or angle is None:
        return ""
    out = io.BytesIO()
    Image.fromarray(orientation.turn_horizontal(pixels, angle, seed=galaxy.pgc)).save(out, "JPEG", quality=90)
    if force and default_storage.exists(target):
        default_storage.delete(target)
    return _write_aside_then_move(target, out.getvalue())


# ------------------------------------------------------------------------------------ acquiring


def sdss_client() -> SdssClient:
    """The process's client, reused so its HTTP connections stay open between galaxies."""
    return _client(
        settings.GIZ_SDSS_CUTOUT_BASE_URL,
        settings.GIZ_SDSS_FRAMES_BASE_URL,
        settings.GIZ_SDSS_DATA_RELEASE,
        settings.GIZ_SDSS_TIMEOUT_S,
        settings.GIZ_SDSS_FOV_FACTOR,
        settings.GIZ_SDSS_RATE_LIMIT,
    )


@lru_cache(maxsize=4)
def _client(
    cutout_base_url: str, frames_base_url: str, data_release: str, timeout_s: float, fov: float, rate: str
) -> SdssClient:
    # One client per process and configuration: its rate limiter is the per-worker-process limit.
    return SdssClient(
        cutout_base_url=cutout_base_url,
        frames_base_url=frames_base_url,
        data_release=data_release,
        timeout_s=timeout_s,
        fov_factor=fov,
        rate_limit_per_s=parse_rate(rate),
    )


@lru_cache(maxsize=4)
def _survey_http(timeout_s: float, rate: str) -> HttpClient:
    # One per process and configuration, shared by every HiPS and template survey: one rate limit for them all.
    return HttpClient(timeout_s=timeout_s, rate_limit_per_s=parse_rate(rate))


def survey_source(*, survey: Survey, sdss: SdssClient | None = None) -> ImageSource:
    """The image source of a survey: SDSS's client, hips2fits for a HiPS survey, or the survey's URL template."""
    if survey.source_kind == Survey.SourceKind.SDSS:
        return SdssSource(sdss or sdss_client())
    http = _survey_http(settings.GIZ_SDSS_TIMEOUT_S, settings.GIZ_SURVEY_RATE_LIMIT)
    if survey.source_kind == Survey.SourceKind.HIPS:
        return HipsSource(
            http=http,
            server_url=settings.GIZ_HIPS2FITS_URL,
            hips_id=survey.hips_id,
            fov_factor=settings.GIZ_SDSS_FOV_FACTOR,
        )
    return TemplateSource(http=http, url_template=survey.url_template, fov_factor=settings.GIZ_SDSS_FOV_FACTOR)


def _intact(galaxy: Galaxy, band: str, format: str) -> GalaxyImage | None:
    image = GalaxyImage.objects.filter(galaxy=galaxy, band=band, format=format).first()
    return image if image is not None and image_is_intact(image) else None


def galaxy_acquire(*, galaxy: Galaxy, client: SdssClient | None = None, predict: bool = True) -> list[GalaxyImage]:
    """Fetch and store what a galaxy still lacks from its survey's source; mark it ready. Raises SdssError
    (whatever the survey; state untouched).

    Resumable: an image already stored with a matching checksum is not fetched again, so a task
    killed half-way, or redelivered, only fetches the rest. `predict=False` when the caller predicts
    the galaxy itself right away. `client` is the SDSS client to use for an SDSS survey.
    """
    images = []
    color = _intact(galaxy, GalaxyImage.Band.COLOR, GalaxyImage.Format.JPEG)
    if galaxy.source == Galaxy.Source.SYNTHETIC:
        # Synthetic galaxies are rendered (manage.py render_synthetic); their positions are made up.
        if color is None:
            raise SdssError("a synthetic galaxy is rendered, not fetched from SDSS", permanent=True)
        return [color]
    survey = galaxy.survey
    source = survey_source(survey=survey, sdss=client)
    if color is None:
        cutout = source.fetch_cutout(ra=galaxy.ra, dec=galaxy.dec, d25_arcmin=galaxy.d25_arcmin)
        color = image_store(
            galaxy=galaxy,
            band=GalaxyImage.Band.COLOR,
            format=GalaxyImage.Format.JPEG,
            data=cutout.data,
            source=Galaxy.Source.SDSS,
            pixel_scale=cutout.pixel_scale,
            predict=predict,
            survey_id=survey.pk,
        )
    images.append(color)
    if settings.GIZ_SDSS_FETCH_FITS:
        bands = list(survey.bands)
        for band, fetch in source.band_stamps(ra=galaxy.ra, dec=galaxy.dec, d25_arcmin=galaxy.d25_arcmin, bands=bands):
            stored = _intact(galaxy, band, GalaxyImage.Format.FITS)
            if stored is None:
                stamp = fetch()
                stored = image_store(
                    galaxy=galaxy,
                    band=band,
                    format=GalaxyImage.Format.FITS,
                    data=stamp.data,
                    source=Galaxy.Source.SDSS,
                    pixel_scale=stamp.pixel_scale,
                    survey_id=survey.pk,
                )
            images.append(stored)
    Galaxy.objects.filter(pk=galaxy.pk).update(state=Galaxy.State.READY, failure_reason="", updated_at=timezone.now())
    galaxy.state, galaxy.failure_reason = Galaxy.State.READY, ""
    return images


def galaxy_acquisition_failed(*, galaxy_id: int, reason: str) -> None:
    """Record why a galaxy has no images (a permanent failure, or transient ones past the retry limit)."""
    Galaxy.objects.filter(pk=galaxy_id).exclude(state=Galaxy.State.READY).update(
        state=Galaxy.State.FAILED, failure_reason=reason[:2000], updated_at=timezone.now()
    )


def galaxy_acquire_now(*, galaxy: Galaxy, predict: bool = True) -> list[GalaxyImage]:
    """Synchronous fetch and store, for requests that wait for the answer; ApplicationError on failure."""
    try:
        return galaxy_acquire(galaxy=galaxy, predict=predict)
    except SdssError as exc:
        details = {"permanent": exc.permanent, "reason": exc.reason, "pgc": galaxy.pgc}
        if exc.permanent or exc.blank:
            # One blank answer is not proof enough to record the galaxy as outside the footprint: the
            # background task, which retries, decides that. The request is told now.
            if exc.permanent:
                galaxy_acquisition_failed(galaxy_id=galaxy.pk, reason=str(exc))
            raise ApplicationError(
                f"No {galaxy.survey} image for {galaxy}: {exc.reason}",
                code="image_unavailable",
                details=details,
                status_code=422,
            ) from exc
        if exc.retry_after is not None:
            details["retry_after_s"] = exc.retry_after
        raise ApplicationError(
            f"The {galaxy.survey} image service failed for {galaxy} ({exc.reason}); try again later.",
            code="sdss_unavailable",
            details=details,
            status_code=503,
        ) from exc


def galaxy_from_position(*, ra: float, dec: float, fov_arcmin: float, survey: Survey | None = None) -> Galaxy:
    """The 'upload'-source galaxy at a sky position (within 1 arcsec), created on first request; a new one
    belongs to `survey` (default: the reference survey)."""
    try:
        ra, dec = float(ra), float(dec)
        check_position(ra, dec)
    except (SdssError, TypeError, ValueError) as exc:
        raise ApplicationError(str(getattr(exc, "reason", exc)), code="invalid_position") from exc
    if not (isinstance(fov_arcmin, int | float) and 0.1 <= fov_arcmin <= 120):
        raise ApplicationError("fov_arcmin must be between 0.1 and 120.", code="invalid_position")
    tolerance = 1.0 / 3600
    d25 = fov_arcmin / settings.GIZ_SDSS_FOV_FACTOR
    nearby = Galaxy.objects.filter(
        source=Galaxy.Source.UPLOAD,
        pgc__gte=POSITION_PGC_BASE,
        pgc__lt=POSITION_PGC_BASE + 100_000_000,
        ra__range=(ra - tolerance, ra + tolerance),
        dec__range=(dec - tolerance, dec + tolerance),
        d25_arcmin=d25,
    ).first()
    if nearby is not None:
        return nearby
    for _ in range(5):
        top = Galaxy.objects.filter(pgc__gte=POSITION_PGC_BASE, pgc__lt=POSITION_PGC_BASE + 100_000_000).aggregate(
            top=Max("pgc")
        )["top"]
        try:
            with transaction.atomic():
                return Galaxy.objects.create(
                    pgc=(top or POSITION_PGC_BASE) + 1,
                    name=f"J{ra:08.4f}{dec:+08.4f}",
                    ra=ra,
                    dec=dec,
                    d25_arcmin=d25,
                    source=Galaxy.Source.UPLOAD,
                    survey=survey or reference_survey(),
                )
        except IntegrityError:
            continue  # another request took that number: take the next
    raise ApplicationError("Could not allocate a number for this position; try again.", code="busy", status_code=503)


def retry_delay(*, retries: int, retry_after: float | None, rng: random.Random | None = None) -> float:
    """Seconds before the next try: exponential backoff with full jitter, never sooner than Retry-After."""
    base, cap = settings.GIZ_SDSS_BACKOFF_BASE_S, settings.GIZ_SDSS_BACKOFF_MAX_S
    ceiling = min(cap, base * 2**retries)
    delay = (rng or random).uniform(ceiling / 2, ceiling)  # half fixed, half jitter: spread, never zero
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


# ------------------------------------------------------------------------------------ jobs


def acquisition_job_create(
    *, galaxy_ids: Iterable[int], description: str = "", user=None, queue: bool = True
) -> AcquisitionJob:
    """A job over these galaxies, fanned out by a task after commit."""
    ids = sorted(set(galaxy_ids))
    with transaction.atomic():
        job = AcquisitionJob.objects.create(description=description[:255], total=len(ids), created_by=user)
        for start in range(0, len(ids), 2000):
            AcquisitionJobItem.objects.bulk_create(
                [AcquisitionJobItem(job=job, galaxy_id=gid) for gid in ids[start : start + 2000]]
            )
        if not ids:
            AcquisitionJob.objects.finish(job.pk, status=AcquisitionJob.Status.SUCCEEDED)
            job.refresh_from_db()
        elif queue:
            # Imported here: acquisition.tasks imports the services, a cycle at module level.
            from acquisition.tasks import acquire_job

            transaction.on_commit(lambda: acquire_job.delay(job.pk))
    return job


def _being_acquired() -> Q:
    """Galaxies another task is fetching now: claimed less than GIZ_ACQUIRE_STALE_S ago."""
    stale = timezone.now() - timedelta(seconds=settings.GIZ_ACQUIRE_STALE_S)
    return Q(state=Galaxy.State.ACQUIRING, updated_at__gte=stale)


def galaxy_acquisition_lease(*, galaxy_id: int, seconds: float, worker: str | None = None) -> None:
    """Keep an 'acquiring' galaxy from other tasks for `seconds` more: a task fetching it, or waiting to retry.

    A claim goes stale GIZ_ACQUIRE_STALE_S after the galaxy's updated_at: long, since a claimed galaxy may wait
    behind thousands in the queue. Once its task runs, the galaxy needs only the fetch's own time limit, so the
    task moves updated_at back (or forward, for a retry's wait) to go stale `seconds` from now: a task killed
    mid-fetch is then queued again by the next backstop after that. `worker`, if given, is recorded as the
    holder's node name ("" for none: a retry's message may wait in any worker).
    """
    lost_at = timezone.now() + timedelta(seconds=seconds)
    holder = {} if worker is None else {"acquiring_worker": worker[:255]}
    Galaxy.objects.filter(pk=galaxy_id, state=Galaxy.State.ACQUIRING).update(
        updated_at=lost_at - timedelta(seconds=settings.GIZ_ACQUIRE_STALE_S), **holder
    )


@contextmanager
def galaxy_acquisition_leased(*, galaxy_id: int, worker: str = ""):
    """Hold an 'acquiring' galaxy for the task fetching it while the body runs: the lease of
    GIZ_ACQUIRE_FETCH_STALE_S is renewed from a thread every third of it, so it lapses that long after the process
    dies (SIGKILL, the hard time limit, a lost machine) and never while it lives, however slow SDSS answers.

    `worker` (the Celery node name) is recorded with the lease: if that worker starts again while the galaxy is
    still being acquired, its previous incarnation died in this fetch, and it queues the galaxy again at once
    (galaxies_requeue_orphaned) instead of after the lease lapses and the next backstop.
    """
    seconds = settings.GIZ_ACQUIRE_FETCH_STALE_S
    galaxy_acquisition_lease(galaxy_id=galaxy_id, seconds=seconds, worker=worker)
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(seconds / 3):
                try:
                    galaxy_acquisition_lease(galaxy_id=galaxy_id, seconds=seconds)
                except DatabaseError:
                    logger.warning("Galaxy %s: acquisition lease not renewed", galaxy_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=renew, name=f"acquire-{galaxy_id}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        # Bounded: a renewal waiting on the galaxy's row lock ends when its holder commits; the body's own
        # transactions are committed by now, so the wait is short (a test's enclosing transaction is the exception).
        thread.join(timeout=10)


def _galaxies_claim(candidates: QuerySet[Galaxy]) -> list[int]:
    """Mark the candidates not being acquired as 'acquiring now' and return their ids, in one transaction.

    The rows are locked as they are read (others' locked rows are skipped), so the job fan-out and beat's
    acquire_missing never both claim a galaxy: whichever comes second finds it being acquired.
    """
    with transaction.atomic():
        ids = list(
            candidates.exclude(_being_acquired())
            .select_for_update(skip_locked=True, no_key=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        # A galaxy already stored keeps its state: its task only confirms the images (and counts it in its job).
        # No holder until that task starts (an earlier fetch's holder restarting must not queue it twice).
        Galaxy.objects.filter(pk__in=ids).exclude(state=Galaxy.State.READY).update(
            state=Galaxy.State.ACQUIRING, updated_at=timezone.now(), acquiring_worker=""
        )
    return ids


def galaxies_requeue_orphaned(*, worker: str, enqueue: Callable[[int], None]) -> list[int]:
    """Claim again, and hand to `enqueue(galaxy_id)`, the galaxies whose fetch the worker `worker` (a node name)
    held: called when a worker of that name starts, so its previous incarnation died in those fetches.

    Their messages wait in the broker's unacknowledged set (Redis: an hour); without this the lease lapses and
    the next backstop queues them (GIZ_ACQUIRE_FETCH_STALE_S plus up to a minute). The rows are locked as they
    are claimed, and a backstop's claim clears the holder, so the two never both queue a galaxy.
    """
    if not worker:
        return []
    with transaction.atomic():
        ids = list(
            Galaxy.objects.filter(state=Galaxy.State.ACQUIRING, acquiring_worker=worker)
            .select_for_update(skip_locked=True, no_key=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        Galaxy.objects.filter(pk__in=ids).update(updated_at=timezone.now(), acquiring_worker="")
        for galaxy_id in ids:
            transaction.on_commit(lambda galaxy_id=galaxy_id: enqueue(galaxy_id))
    if ids:
        logger.warning("Galaxies %s: fetches re-queued, their worker %s restarted", ids, worker)
    return ids


def acquisition_job_fan_out(*, job_id: int, enqueue: Callable[[int, int], None]) -> int:
    """Claim the job, then its pending galaxies not being fetched, and hand each to `enqueue(galaxy_id, job_id)`.

    Once per job: a redelivered fan-out finds the job claimed (its galaxies beat as they finish) and does
    nothing, unless nothing has beaten for GIZ_ACQUIRE_STALE_S, when it queues what is left again. A pending
    galaxy already being acquired (by acquire_missing, or another job) is not queued again: its task records
    the outcome in every job waiting for it (galaxy_acquisition_record).
    """
    stale_before = timezone.now() - timedelta(seconds=settings.GIZ_ACQUIRE_STALE_S)
    if not AcquisitionJob.objects.claim(job_id, stale_before=stale_before):
        return 0
    pending = AcquisitionJobItem.objects.filter(job_id=job_id, outcome=AcquisitionJobItem.Outcome.PENDING)
    galaxy_ids = _galaxies_claim(Galaxy.objects.filter(pk__in=pending.values("galaxy_id")))
    for galaxy_id in galaxy_ids:
        enqueue(galaxy_id, job_id)
    return len(galaxy_ids)


def galaxy_acquisition_record(*, galaxy_id: int, succeeded: bool, reason: str = "") -> None:
    """Count a galaxy's outcome in every job still waiting for it; a galaxy stored by then counts as stored."""
    if not succeeded and Galaxy.objects.filter(pk=galaxy_id, state=Galaxy.State.READY).exists():
        succeeded, reason = True, ""  # another delivery of its task stored it: the job must say so
    job_ids = AcquisitionJobItem.objects.filter(
        galaxy_id=galaxy_id, outcome=AcquisitionJobItem.Outcome.PENDING
    ).values_list("job_id", flat=True)
    for job_id in list(job_ids):
        acquisition_job_record(job_id=job_id, galaxy_id=galaxy_id, succeeded=succeeded, reason=reason)


def acquisition_job_record(*, job_id: int, galaxy_id: int, succeeded: bool, reason: str = "") -> None:
    """Count one galaxy's outcome in its job exactly once, and close the job after the last one."""
    outcome = AcquisitionJobItem.Outcome.SUCCEEDED if succeeded else AcquisitionJobItem.Outcome.FAILED
    with transaction.atomic():
        claimed = AcquisitionJobItem.objects.filter(
            job_id=job_id, galaxy_id=galaxy_id, outcome=AcquisitionJobItem.Outcome.PENDING
        ).update(outcome=outcome, reason=reason[:2000])
        if not claimed:
            return  # a redelivered task: already counted
        counter = "done" if succeeded else "failed"
        # One statement moves the counter and closes the job when this was its last galaxy.
        last = Q(total__lte=F("done") + F("failed") + 1, live=True)
        now = timezone.now()
        AcquisitionJob.objects.filter(pk=job_id).update(
            **{counter: F(counter) + 1},
            heartbeat_at=now,
            status=Case(When(last, then=Value(AcquisitionJob.Status.SUCCEEDED)), default=F("status")),
            live=Case(When(last, then=Value(None, output_field=BooleanField())), default=F("live")),
            finished_at=Case(When(last, then=Value(now)), default=F("finished_at")),
        )


def galaxies_missing_images_claim(*, limit: int) -> list[int]:
    """Catalogued galaxies never acquired, and 'acquiring' ones whose worker vanished; claimed for a run."""
    stale = timezone.now() - timedelta(seconds=settings.GIZ_ACQUIRE_STALE_S)
    missing = selectors.galaxies_missing_images(acquiring_since_before=stale)
    first = list(missing.order_by("pk").values_list("pk", flat=True)[:limit])
    return _galaxies_claim(missing.filter(pk__in=first))  # still missing once locked


def partial_files_clean(*, older_than_s: float = 3600) -> int:
    """Delete half-written files left by killed workers (never visible under a real name)."""
    folder = Path(settings.MEDIA_ROOT) / PARTIAL_DIR
    if not folder.is_dir():
        return 0
    cutoff = timezone.now().timestamp() - older_than_s
    removed = 0
    for path in folder.glob("*.part"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# ------------------------------------------------------------------------------------ catalogs


@dataclass
class CatalogImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    galaxy_ids: list[int] = field(default_factory=list)
    survey: str = ""  # the slug new galaxies were given
    # Galaxies already catalogued under another survey: updated, but left in their survey (their labels and
    # images came from it).
    other_survey: int = 0

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged


CATALOG_FIELDS = ["name", "ra", "dec", "d25_arcmin", "position_angle", "axial_ratio"]


def _differs(galaxy: Galaxy, row: CatalogRow) -> bool:
    return any(getattr(galaxy, name) != getattr(row, name) for name in CATALOG_FIELDS)


def _images_forget(*, galaxy_ids: list[int]) -> None:
    """Drop the stored images of galaxies whose position or size changed (their files after commit)."""
    if not galaxy_ids:
        return
    images = GalaxyImage.objects.filter(galaxy_id__in=galaxy_ids)
    stored = [name for name in images.values_list("file", flat=True) if name]
    names = stored + [horizontal_name(name) for name in stored]
    images.delete()
    transaction.on_commit(lambda: [default_storage.delete(name) for name in names])


def catalog_import(
    *,
    data: bytes,
    filename: str = "",
    survey: Survey | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = 500,
) -> CatalogImportResult:
    """Import a CSV/ECSV catalog: good rows created or updated by PGC, bad rows reported by line.

    New galaxies belong to `survey` (default: the reference survey) and their images are fetched from it.

    The file is imported in one transaction: all its good rows or, if the database refuses any, none.
    Raises ApplicationError when the file as a whole cannot be read or imported.
    """
    try:
        rows, errors = catalog_parse(data, filename=filename)
    except CatalogError as exc:
        raise ApplicationError(f"Cannot read the catalog: {exc}", code="invalid_catalog") from exc
    survey = survey or reference_survey()
    result = CatalogImportResult(errors=errors, survey=survey.slug)
    try:
        with transaction.atomic():
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                _catalog_batch_import(batch=batch, result=result, survey=survey)
                if progress is not None:
                    progress(len(batch), len(rows))
    except IntegrityError as exc:
        # Rows are checked against every constraint first, so this is a concurrent import of the same PGCs.
        raise ApplicationError(
            f"Nothing was imported: the database refused a row ({exc.__class__.__name__}); "
            "is another import of the same galaxies running? Try again.",
            code="import_failed",
        ) from exc
    return result


def _catalog_batch_import(*, batch: list[CatalogRow], result: CatalogImportResult, survey: Survey) -> None:
    existing = Galaxy.objects.in_bulk([row.pgc for row in batch], field_name="pgc")
    new, changed, moved_ids = [], [], []
    for row in batch:
        galaxy = existing.get(row.pgc)
        if galaxy is None:
            new.append(Galaxy(pgc=row.pgc, survey=survey, **{name: getattr(row, name) for name in CATALOG_FIELDS}))
            continue
        result.other_survey += galaxy.survey_id != survey.pk
        if not _differs(galaxy, row):
            result.unchanged += 1
            continue
        moved = (galaxy.ra, galaxy.dec, galaxy.d25_arcmin) != (row.ra, row.dec, row.d25_arcmin)
        for name in CATALOG_FIELDS:
            setattr(galaxy, name, getattr(row, name))
        if moved and galaxy.source == Galaxy.Source.SDSS:
            # A new position or size needs a new stamp: the backstop fetches it again.
            galaxy.state, galaxy.failure_reason = Galaxy.State.NEW, ""
            moved_ids.append(galaxy.pk)
        galaxy.updated_at = timezone.now()
        changed.append(galaxy)
    Galaxy.objects.bulk_create(new)
    Galaxy.objects.bulk_update(changed, [*CATALOG_FIELDS, "state", "failure_reason", "updated_at"])
    _images_forget(galaxy_ids=moved_ids)
    result.created += len(new)
    result.updated += len(changed)
    result.galaxy_ids.extend(Galaxy.objects.filter(pgc__in=[row.pgc for row in batch]).values_list("pk", flat=True))
