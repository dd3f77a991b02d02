"""Writes for the published catalogue: export files, in the foreground (command) or as a background job."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from inference.catalog_selectors import catalog_chunks, catalog_count
from labeling import catalog_formats
from labeling.models import CatalogExport

__all__ = ["catalog_export_create", "catalog_export_queue", "catalog_export_run", "catalog_meta", "catalog_write"]

# An export beats after every chunk of rows (seconds apart): half an hour without one is a killed worker.
EXPORT_STALE_AFTER = timedelta(minutes=30)


def catalog_meta(*, filters: dict) -> dict:
    """Table metadata: what the file is, when and from which query it was made, and where its values come from."""
    return {
        "description": "Galaxy Inclination Zoo catalogue: volunteer consensus and CNN ensemble inclinations",
        "origin": "Galaxy Inclination Zoo",
        "date": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "query": json.dumps(filters, sort_keys=True),
        "sdss_data_release": settings.GIZ_SDSS_DATA_RELEASE,
        "q0": 0.2,
    }


def catalog_write(
    *, fmt: str, out: BinaryIO, filters: dict, chunk_size: int = 10000, progress: Callable[[int], None] | None = None
) -> int:
    """Write the catalogue rows matching `filters` to a seekable binary file; returns the number of rows."""
    return catalog_formats.write_catalog(
        fmt,
        out,
        catalog_chunks(filters=filters, chunk_size=chunk_size),
        meta=catalog_meta(filters=filters),
        progress=progress,
    )


def catalog_export_queue(*, export: CatalogExport) -> None:
    """Queue a saved export's task once the transaction commits."""
    from inference.tasks import catalog_export_run_task  # inference.tasks imports this module

    transaction.on_commit(lambda: catalog_export_run_task.delay(export.id))


def catalog_export_create(*, fmt: str, filters: dict, user=None) -> CatalogExport:
    """Record a background export of validated filters and queue it."""
    export = CatalogExport.objects.create(format=fmt, filters=filters, created_by=user)
    catalog_export_queue(export=export)
    return export


def catalog_export_run(*, export_id: int, chunk_size: int = 10000) -> CatalogExport | None:
    """Run a queued export: claim it, write the file with progress, store it.

    A redelivered task does nothing while the export's worker beats; one that stopped beating for
    EXPORT_STALE_AFTER (killed) is started again from the beginning.
    """
    if not CatalogExport.objects.claim(export_id, stale_before=timezone.now() - EXPORT_STALE_AFTER, done=0):
        return None
    export = CatalogExport.objects.select_related("created_by").get(id=export_id)
    filters = dict(export.filters)
    if export.created_by is not None and not export.created_by.is_staff:
        filters["without_gold"] = True  # a gold galaxy's b/a, consensus and predictions give its answer away
    export.total = catalog_count(filters=filters)
    export.save(update_fields=["total"])

    def advance(n: int) -> None:
        export.done += n
        CatalogExport.objects.beat(export.id, done=export.done)

    try:
        with tempfile.TemporaryFile() as out:
            rows = catalog_write(fmt=export.format, out=out, filters=filters, chunk_size=chunk_size, progress=advance)
            out.seek(0)
            stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
            name = f"giz-catalog-{export.id}-{stamp}.{catalog_formats.EXTENSIONS[export.format]}"
            export.file.save(name, File(out), save=False)
    except Exception as error:
        CatalogExport.objects.finish(export.id, status=CatalogExport.Status.FAILED, error=repr(error))
        raise
    # The count of a cone is an upper bound (its corners are trimmed while writing): the file's rows are the total.
    CatalogExport.objects.finish(
        export.id, status=CatalogExport.Status.SUCCEEDED, file=export.file.name, total=rows, done=rows
    )
    export.refresh_from_db()
    return export
