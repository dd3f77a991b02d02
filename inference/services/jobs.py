"""Inference jobs: a list of PGC numbers, the whole catalog or one sky position, predicted in batches."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from acquisition.models import GalaxyImage
from acquisition.services import galaxy_acquire_now, galaxy_from_position
from giz_site.exceptions import ApplicationError
from inference.models import (
    InferenceJob,
    InferenceJobItem,
)
from inference.services.predictions import EnsembleResult, active_ensemble, ensemble_key, predict_galaxies
from labeling.models import Galaxy

# A job beats after every batch; a batch that fetches missing images may wait on SDSS for minutes.
JOB_STALE_AFTER = timedelta(minutes=30)


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
    # Imported here: inference.tasks imports the services, a cycle at module level.
    from inference.tasks import inference_job_task

    transaction.on_commit(lambda: inference_job_task.delay(job.pk))
    return job


def _job_galaxies(job: InferenceJob):
    """The job's galaxies in a stable order, as (pgc, galaxy or None) batches."""
    if job.kind == InferenceJob.Kind.PGC_LIST:
        pgcs = job.params["pgcs"]
        galaxies = Galaxy.objects.all()
        if not getattr(job.created_by, "is_staff", False):
            galaxies = galaxies.exclude(is_gold=True)  # its prediction gives a gold galaxy's answer away
        for start in range(0, len(pgcs), settings.GIZ_INFERENCE_BATCH_SIZE):
            chunk = pgcs[start : start + settings.GIZ_INFERENCE_BATCH_SIZE]
            found = galaxies.in_bulk(chunk, field_name="pgc")
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
        p = job.params
        galaxy = galaxy_from_position(ra=p["ra"], dec=p["dec"], fov_arcmin=p["fov_arcmin"])
        yield [(galaxy.pgc, galaxy)]


def galaxy_color_image_ensure(*, galaxy: Galaxy) -> None:
    """Fetch a missing colour image synchronously (position jobs, API requests for galaxies never acquired).

    Raises ApplicationError (permanent or transient) when the image cannot be had.
    """
    if GalaxyImage.objects.filter(galaxy=galaxy, band=GalaxyImage.Band.COLOR).exists():
        return
    # predict=False: the caller predicts right after; a queued prediction would be a second one.
    galaxy_acquire_now(galaxy=galaxy, predict=False)
    galaxy.refresh_from_db()


def inference_job_run(*, job_id: int, progress_callback=None) -> InferenceJob | None:
    """Work through a job batch by batch; resumable (galaxies already done are skipped).

    None when the job finished, or another worker is still on it (a redelivered task); a job whose
    worker stopped beating is taken over where it stopped.
    """
    if not InferenceJob.objects.claim(job_id, stale_before=timezone.now() - JOB_STALE_AFTER):
        return None
    job = InferenceJob.objects.get(pk=job_id)
    try:
        active_ensemble()
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
                                ensemble_key=ensemble_key(outcome.model_version_ids.values()),
                                predicted_at=outcome.predicted_at,
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
                InferenceJob.objects.beat(job.pk, done=F("done") + ok, failed=F("failed") + len(items) - ok)
            if progress_callback:
                progress_callback(len(items))
    except ApplicationError as exc:
        InferenceJob.objects.finish(job.pk, status=InferenceJob.Status.FAILED, error=exc.message)
        return InferenceJob.objects.get(pk=job.pk)
    InferenceJob.objects.finish(job.pk, status=InferenceJob.Status.SUCCEEDED)
    return InferenceJob.objects.get(pk=job.pk)
