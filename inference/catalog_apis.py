"""The catalogue for astronomers: file exports (streamed, or as a background job) under /api/catalog/.

The IVOA cone search and VOSI endpoints are in inference.catalog_vo: they answer VOTable/XML, not JSON.
"""

import tempfile

from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from giz_site.api_permissions import IsStaff, IsVolunteer
from inference.catalog_selectors import catalog_chunks
from inference.catalog_services import catalog_export_create, catalog_meta, catalog_write
from labeling import catalog_formats, vote_export
from labeling.apis import GalaxyListApi
from labeling.models import CatalogExport, ConsensusLabel

# Documented per format so clients (and the schema's checkers) know each file's media type.
_FILE_RESPONSE = {
    (200, media_type.split(";")[0]): OpenApiResponse(OpenApiTypes.BINARY, description=f"The {fmt} file")
    for fmt, media_type in catalog_formats.CONTENT_TYPES.items()
}


class CatalogFilterSerializer(GalaxyListApi.FilterSerializer):
    """The galaxy list's filters plus the consensus status and a cone (all three of cone_ra, cone_dec, cone_radius)."""

    status = serializers.ChoiceField(choices=ConsensusLabel.Status.choices, required=False)
    cone_ra = serializers.FloatField(required=False, min_value=0, max_value=360, help_text="deg")
    cone_dec = serializers.FloatField(required=False, min_value=-90, max_value=90, help_text="deg")
    cone_radius = serializers.FloatField(required=False, min_value=0, max_value=180, help_text="deg")

    class Meta:
        ref_name = "CatalogFilter"

    def validate(self, attrs):
        attrs = super().validate(attrs)
        cone = [name for name in ("cone_ra", "cone_dec", "cone_radius") if attrs.get(name) is not None]
        if cone and len(cone) != 3:
            raise serializers.ValidationError({"cone_radius": ["A cone needs cone_ra, cone_dec and cone_radius."]})
        return attrs


class CatalogExportParamsSerializer(CatalogFilterSerializer):
    format = serializers.ChoiceField(choices=catalog_formats.FORMATS, default="ecsv")

    class Meta:
        ref_name = "CatalogExportParams"


class _IgnoreFormatParameter(DefaultContentNegotiation):
    """`format` names the file format here, not DRF's renderer; errors are always JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _filters(data: dict) -> dict:
    return {key: value for key, value in data.items() if key != "format" and value is not None}


def _attachment(name: str) -> str:
    return f'attachment; filename="{name}"'


class CatalogExportApi(APIView):
    """The catalogue as a file (ECSV, VOTable, FITS or CSV) with units and UCDs, streamed in constant memory."""

    permission_classes = [IsVolunteer]
    content_negotiation_class = _IgnoreFormatParameter

    @extend_schema(
        operation_id="catalog_export",
        parameters=[CatalogExportParamsSerializer],
        responses=_FILE_RESPONSE,
        tags=["catalog"],
    )
    def get(self, request):
        params = CatalogExportParamsSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        fmt, filters = params.validated_data["format"], _filters(params.validated_data)
        if not request.user.is_staff:
            filters["without_gold"] = True  # a gold galaxy's b/a, consensus and predictions give its answer away
        name = f"giz-catalog.{catalog_formats.EXTENSIONS[fmt]}"
        if fmt == "fits":
            # A FITS header states the row count: write to a temporary file, patch it, then send it.
            out = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
            catalog_write(fmt=fmt, out=out, filters=filters)
            out.seek(0)
            return FileResponse(out, as_attachment=True, filename=name, content_type=catalog_formats.CONTENT_TYPES[fmt])
        stream = catalog_formats.stream_catalog(
            fmt, catalog_chunks(filters=filters), meta=catalog_meta(filters=filters)
        )
        response = StreamingHttpResponse(stream, content_type=catalog_formats.CONTENT_TYPES[fmt])
        response["Content-Disposition"] = _attachment(name)
        return response


class CatalogExportJobOutputSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = CatalogExport
        fields = [
            "id",
            "format",
            "filters",
            "status",
            "total",
            "done",
            "progress",
            "error",
            "download_url",
            "created_at",
            "started_at",
            "finished_at",
        ]
        ref_name = "CatalogExportJob"

    def get_download_url(self, export) -> str | None:
        if export.status != CatalogExport.Status.SUCCEEDED or not export.file:
            return None
        request = self.context.get("request")
        url = f"/api/catalog/exports/{export.id}/file/"
        return request.build_absolute_uri(url) if request else url


def _exports_visible_to(user) -> QuerySet[CatalogExport]:
    exports = CatalogExport.objects.all()
    return exports if user.is_staff else exports.filter(created_by=user)


class CatalogExportJobListApi(APIView):
    """Background exports: start one (for large catalogues), or list yours."""

    permission_classes = [IsVolunteer]

    @extend_schema(
        operation_id="catalog_exports_create",
        request=CatalogExportParamsSerializer,
        responses={202: CatalogExportJobOutputSerializer},
        tags=["catalog"],
    )
    def post(self, request):
        params = CatalogExportParamsSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        export = catalog_export_create(
            fmt=params.validated_data["format"],
            filters=_filters(params.validated_data),
            user=request.user,
        )
        export.refresh_from_db()
        body = CatalogExportJobOutputSerializer(export, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="catalog_exports_list", responses=CatalogExportJobOutputSerializer(many=True), tags=["catalog"]
    )
    def get(self, request):
        exports = _exports_visible_to(request.user)[:50]
        return Response(CatalogExportJobOutputSerializer(exports, many=True, context={"request": request}).data)


class CatalogExportJobDetailApi(APIView):
    """One background export's status and progress; download_url once it is done."""

    permission_classes = [IsVolunteer]

    @extend_schema(
        operation_id="catalog_exports_retrieve", responses=CatalogExportJobOutputSerializer, tags=["catalog"]
    )
    def get(self, request, export_id: int):
        export = get_object_or_404(_exports_visible_to(request.user), pk=export_id)
        return Response(CatalogExportJobOutputSerializer(export, context={"request": request}).data)


class CatalogExportJobFileApi(APIView):
    """The file of a finished background export."""

    permission_classes = [IsVolunteer]

    @extend_schema(
        operation_id="catalog_exports_file",
        responses=_FILE_RESPONSE,
        tags=["catalog"],
    )
    def get(self, request, export_id: int):
        export = get_object_or_404(
            _exports_visible_to(request.user).exclude(file=""), pk=export_id, status=CatalogExport.Status.SUCCEEDED
        )
        return FileResponse(
            export.file.open("rb"),
            as_attachment=True,
            filename=export.file.name.rsplit("/", 1)[-1],
            content_type=catalog_formats.CONTENT_TYPES[export.format],
        )


# ------------------------------------------------------------------------------ research exports (staff)


class ResearchExportParamsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=catalog_formats.FORMATS, default="ecsv")

    class Meta:
        ref_name = "ResearchExportParams"


def _research_export(request, *, name: str, columns, chunks) -> StreamingHttpResponse | FileResponse:
    params = ResearchExportParamsSerializer(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    fmt = params.validated_data["format"]
    filename = f"giz-{name}.{catalog_formats.EXTENSIONS[fmt]}"
    meta = {"description": f"Galaxy Inclination Zoo {name}; volunteers under stable pseudonyms"}
    if fmt == "fits":
        out = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
        catalog_formats.write_catalog(fmt, out, chunks, columns=columns, meta=meta)
        out.seek(0)
        return FileResponse(out, as_attachment=True, filename=filename, content_type=catalog_formats.CONTENT_TYPES[fmt])
    stream = catalog_formats.stream_catalog(fmt, chunks, columns=columns, meta=meta)
    response = StreamingHttpResponse(stream, content_type=catalog_formats.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = _attachment(filename)
    return response


class ResearchVotesExportApi(APIView):
    """Every vote for research (staff): pseudonymous volunteer, standards shown and chosen, time taken, flags."""

    permission_classes = [IsStaff]
    content_negotiation_class = _IgnoreFormatParameter

    @extend_schema(
        operation_id="research_votes_export",
        parameters=[ResearchExportParamsSerializer],
        responses=_FILE_RESPONSE,
        tags=["research"],
    )
    def get(self, request):
        return _research_export(
            request, name="votes", columns=vote_export.VOTE_COLUMNS, chunks=vote_export.vote_chunks()
        )


class ResearchVolunteersExportApi(APIView):
    """Per-volunteer figures of the consensus model (staff), under the same pseudonyms as the votes."""

    permission_classes = [IsStaff]
    content_negotiation_class = _IgnoreFormatParameter

    @extend_schema(
        operation_id="research_volunteers_export",
        parameters=[ResearchExportParamsSerializer],
        responses=_FILE_RESPONSE,
        tags=["research"],
    )
    def get(self, request):
        return _research_export(
            request, name="volunteers", columns=vote_export.VOLUNTEER_COLUMNS, chunks=vote_export.volunteer_chunks()
        )
