"""Batch inference from an astronomer's table: upload, resolve each row to a galaxy, predict, return the table.

The uploaded table is checked whole (acquisition.galaxy_table) before anything is created; it is then kept in
storage beside the job. The task resolves its rows: a PGC number to the catalogued galaxy, a position to the
catalogued galaxy within MATCH_RADIUS_ARCSEC or else a new galaxy at that position (whose images are then
acquired). The job itself is an ordinary PGC-list job with `acquire` set, so progress and results are those
of every batch job. The result is the uploaded table, every row kept, with the platform's columns appended;
a row that could not be processed says why.
"""

from __future__ import annotations

import io
import json

import numpy as np
from astropy.table import MaskedColumn, Table
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from acquisition.galaxy_table import TableError, TableRow, read_galaxy_table
from acquisition.services import galaxy_from_position
from giz_site.exceptions import ApplicationError
from inference.catalog_selectors import galaxies_near
from inference.models import InferenceJob, InferenceJobItem, ModelVersion
from inference.services import inference_job_run
from labeling.models import Galaxy, Survey
from labeling.services.surveys import get_survey, reference_survey

__all__ = ["MATCH_RADIUS_ARCSEC", "table_job_create", "table_job_result", "table_job_run"]

MATCH_RADIUS_ARCSEC = 5.0
DEFAULT_D25_ARCMIN = 1.0
WRITE_FORMATS = {"ecsv": "ascii.ecsv", "csv": "ascii.csv", "votable": "votable", "fits": "fits"}


def table_job_create(*, user, data: bytes, filename: str, max_rows: int, survey: str = "") -> InferenceJob:
    """Check the table, then create the job and store the table; queued on commit. A bad table or an unknown
    survey creates nothing. Galaxies made for rows at new positions belong to `survey` (a slug; default: the
    reference survey) and get its images."""
    chosen = get_survey(survey, status_code=400) if survey else reference_survey()
    try:
        table, rows, fmt = read_galaxy_table(data, filename, max_rows=max_rows)
    except TableError as exc:
        status = 413 if exc.code == "too_many_rows" else 400
        raise ApplicationError(exc.message, code=exc.code, details={"field": "file"}, status_code=status) from None
    buffer = io.StringIO()
    table.write(buffer, format="ascii.ecsv")
    with transaction.atomic():
        job = InferenceJob.objects.create(
            kind=InferenceJob.Kind.PGC_LIST,
            params={
                "pgcs": [],
                "acquire": True,
                "table": {"filename": filename[:200], "format": fmt, "rows": len(rows), "survey": chosen.slug},
            },
            total=len(rows),
            created_by=user if getattr(user, "pk", None) else None,
        )
        name = default_storage.save(f"jobs/{job.id}/input.ecsv", ContentFile(buffer.getvalue().encode()))
        job.params["table"]["file"] = name
        job.save(update_fields=["params"])
        transaction.on_commit(lambda: _queue(job.id))
    return job


def _queue(job_id: int) -> None:
    # Imported here: inference.tasks imports this module, a cycle at module level.
    from inference.tasks import table_job_task

    table_job_task.delay(job_id)


def _load(job: InferenceJob) -> tuple[Table, list[TableRow]]:
    with default_storage.open(job.params["table"]["file"], "rb") as file:
        data = file.read()
    table, rows, _ = read_galaxy_table(data, "input.ecsv", max_rows=job.params["table"]["rows"])
    return table, rows


def _known_pgcs(rows: list[TableRow]) -> set[int]:
    wanted = sorted({row.pgc for row in rows if row.pgc is not None})
    known: set[int] = set()
    for start in range(0, len(wanted), 1000):
        known.update(Galaxy.objects.filter(pgc__in=wanted[start : start + 1000]).values_list("pgc", flat=True))
    return known


def _resolve(row: TableRow, known: set[int], survey: Survey) -> tuple[int | None, str]:
    """(PGC, "") for the row's galaxy, creating one at a new position; (None, reason) when there is none."""
    if row.problem:
        return None, row.problem
    if row.pgc is not None:
        return (row.pgc, "") if row.pgc in known else (None, "Unknown PGC number.")
    near = galaxies_near(ra=row.ra, dec=row.dec, radius=MATCH_RADIUS_ARCSEC / 3600)
    if near:
        return near[0][0], ""

    d25 = row.d25_arcmin or DEFAULT_D25_ARCMIN
    fov = min(120.0, max(0.1, d25 * settings.GIZ_SDSS_FOV_FACTOR))
    try:
        galaxy = galaxy_from_position(ra=row.ra, dec=row.dec, fov_arcmin=fov, survey=survey)
    except ApplicationError as exc:
        return None, exc.message[:255]
    if row.position_angle is not None and galaxy.position_angle is None:
        Galaxy.objects.filter(pk=galaxy.pk).update(position_angle=row.position_angle)
    return galaxy.pgc, ""


def table_job_run(*, job_id: int) -> InferenceJob | None:
    """Resolve the table's rows (once), then run the job as a PGC-list job that acquires missing images."""

    job = InferenceJob.objects.filter(pk=job_id).first()
    if job is None or "table" not in job.params:
        return None
    if "resolved_file" not in job.params["table"]:
        _, rows = _load(job)
        known = _known_pgcs(rows)
        slug = job.params["table"].get("survey")  # jobs queued before surveys existed have none
        survey = Survey.objects.filter(slug=slug).first() if slug else None
        survey = survey or reference_survey()
        resolved = [_resolve(row, known, survey) for row in rows]
        name = default_storage.save(f"jobs/{job.id}/rows.json", ContentFile(json.dumps(resolved).encode()))
        pgcs = list(dict.fromkeys(pgc for pgc, _ in resolved if pgc is not None))
        job.params["table"]["resolved_file"] = name
        job.params = job.params | {"pgcs": pgcs, "unresolved": sum(1 for pgc, _ in resolved if pgc is None)}
        job.total = len(pgcs)
        job.save(update_fields=["params", "total"])
    return inference_job_run(job_id=job.id)


def _version_ids(members: dict, ids: dict[str, int]) -> str | None:
    return "+".join(str(i) for i in sorted(ids[n] for n in members if n in ids)) or None


def table_job_result(*, job: InferenceJob) -> tuple[Table, str]:
    """The uploaded table with giz_* columns appended for every row, and the upload's format."""
    table, _ = _load(job)
    if "resolved_file" not in job.params["table"]:
        raise ApplicationError(
            "The job has not resolved its table yet; try again shortly.", code="not_ready", status_code=409
        )
    with default_storage.open(job.params["table"]["resolved_file"], "rb") as file:
        resolved = json.load(file)
    items = {item.pgc: item for item in InferenceJobItem.objects.filter(job=job)}
    ids = dict(ModelVersion.objects.values_list("name", "id"))
    values: dict[str, list] = {name: [] for name in ("pgc", "status", "reason", "incl", "spread", "rej", "version")}
    for pgc, reason in resolved:
        item = items.get(pgc) if pgc is not None else None
        if pgc is None:
            status = "failed"
        elif item is None:
            status, reason = "pending", "Not processed yet."
        else:
            status, reason = item.status, item.reason
        values["pgc"].append(pgc)
        values["status"].append(status)
        values["reason"].append(reason or "")
        ok = item is not None and item.status == InferenceJobItem.Status.OK
        values["incl"].append(item.median if ok else None)
        values["spread"].append(item.spread if ok else None)
        values["rej"].append(item.rejection_likelihood if ok else None)
        values["version"].append(_version_ids(item.members, ids) if ok else None)

    def column(name, data, dtype, unit=None, ucd=None, description=""):
        filler = "" if dtype == "U" else 0
        array = np.array([filler if v is None else v for v in data], dtype={"i": np.int64, "f": float, "U": str}[dtype])
        mask = [v is None or v == "" for v in data]
        col = MaskedColumn(array, name=name, mask=mask, unit=unit, description=description)
        if ucd:
            col.meta["ucd"] = ucd
        return col

    table.add_columns(
        [
            column("giz_pgc", values["pgc"], "i", ucd="meta.id", description="PGC number of the galaxy used"),
            column("giz_status", values["status"], "U", ucd="meta.code.qual", description="ok, failed or pending"),
            column("giz_reason", values["reason"], "U", ucd="meta.note", description="Why the row was not processed"),
            column(
                "giz_inclination",
                values["incl"],
                "f",
                "deg",
                "src.orbital.inclination",
                "CNN ensemble's median inclination",
            ),
            column("giz_spread", values["spread"], "f", "deg", "stat.stdev", "Spread of the ensemble members"),
            column("giz_rejection", values["rej"], "f", None, "stat.probability", "Likelihood a human rejects it"),
            column("giz_model_version", values["version"], "U", ucd="meta.version", description="ModelVersion ids"),
        ]
    )
    return table, job.params["table"]["format"]
