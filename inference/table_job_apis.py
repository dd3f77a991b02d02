"""Batch jobs from an uploaded table (ECSV, VOTable, FITS or CSV): start one, and get its result as a table."""

import io
import tempfile

import numpy as np
from astropy import units as u
from astropy.table import MaskedColumn, Table
from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from giz_site.api_permissions import IsVolunteer
from giz_site.exceptions import ApplicationError
from inference.apis import MAX_JOB_PGCS, JobOutputSerializer
from inference.models import InferenceJob
from inference.table_jobs import WRITE_FORMATS, table_job_create, table_job_result
from labeling.catalog_formats import CONTENT_TYPES, EXTENSIONS


class _IgnoreFormatParameter(DefaultContentNegotiation):
    """`format` names the table's format here, not DRF's renderer; errors are always JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _fits_units(table: Table) -> Table:
    """FITS knows fewer units than astropy: an hour angle becomes degrees, any other stranger loses its unit."""
    for name in table.colnames:
        unit = table[name].unit
        if unit is None:
            continue
        try:
            unit.to_string(format="fits")
        except ValueError:
            if unit.is_equivalent(u.deg):
                column = table[name]
                table.replace_column(
                    name,
                    MaskedColumn(
                        np.array(np.ma.getdata(column), dtype=float) * unit.to(u.deg),
                        mask=np.ma.getmaskarray(column),
                        unit=u.deg,
                        description=column.description,
                        meta=column.meta,
                    ),
                )
            else:
                table[name].unit = None
    return table


class TableJobCreateApi(APIView):
    """Upload a table of galaxies (pgc, or ra/dec; optional d25, pa) to predict them all: 202 with the job."""

    permission_classes = [IsVolunteer]
    parser_classes = [MultiPartParser]

    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text=f"ECSV, VOTable, FITS or CSV, up to {MAX_JOB_PGCS:,} rows (the extension names the format)."
        )
        survey = serializers.SlugField(
            required=False,
            help_text="Slug of the survey (`/api/surveys/`) that galaxies at new positions belong to and get "
            "their images from; default: the reference survey. An unknown one is a 400 and creates nothing.",
        )

        class Meta:
            ref_name = "TableJobInput"

    @extend_schema(
        operation_id="jobs_table_create",
        request={"multipart/form-data": InputSerializer},
        responses={202: JobOutputSerializer},
        tags=["inference"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if upload.size > limit:
            raise ApplicationError(
                f"The table is {upload.size / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB.",
                code="too_large",
                details={"field": "file"},
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        job = table_job_create(
            user=request.user,
            data=upload.read(),
            filename=upload.name,
            max_rows=MAX_JOB_PGCS,
            survey=serializer.validated_data.get("survey", ""),
        )
        body = JobOutputSerializer(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class TableJobResultApi(APIView):
    """The uploaded table with the job's results appended (every row; failed ones with a reason)."""

    permission_classes = [IsVolunteer]
    content_negotiation_class = _IgnoreFormatParameter

    class ParamsSerializer(serializers.Serializer):
        format = serializers.ChoiceField(
            choices=list(WRITE_FORMATS), required=False, help_text="Default: the uploaded table's format."
        )

        class Meta:
            ref_name = "TableJobResultParams"

    @extend_schema(
        operation_id="jobs_table_result",
        parameters=[ParamsSerializer],
        responses={
            (200, media.split(";")[0]): OpenApiResponse(OpenApiTypes.BINARY, description=f"The {fmt} table")
            for fmt, media in CONTENT_TYPES.items()
        },
        tags=["inference"],
    )
    def get(self, request, job_id: int):
        params = self.ParamsSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        jobs = InferenceJob.objects.filter(params__has_key="table")
        if not request.user.is_staff:
            jobs = jobs.filter(created_by=request.user)
        job = get_object_or_404(jobs, pk=job_id)
        table, uploaded_format = table_job_result(job=job)
        fmt = params.validated_data.get("format", uploaded_format)
        out = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
        if fmt == "fits":
            _fits_units(table).write(out, format="fits")
        elif fmt == "votable":
            table.write(out, format="votable")
        else:
            text = io.StringIO()
            table.write(text, format=WRITE_FORMATS[fmt])
            out.write(text.getvalue().encode())
        out.seek(0)
        return FileResponse(
            out, as_attachment=True, filename=f"giz-job-{job.id}.{EXTENSIONS[fmt]}", content_type=CONTENT_TYPES[fmt]
        )
