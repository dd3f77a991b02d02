"""The original IncliNET service's API: GET /api/pgc/<id>, GET /api/objname/<name> and POST /api/file.

Answered with its response shape, so existing clients keep working; the work is the same as the
/api/inference/ views do (inference.apis).
"""

import statistics

from django.conf import settings
from django.db.models import Q, Value
from django.db.models.functions import Replace
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from acquisition.models import GalaxyImage
from giz_site.api_schema import pgc_path_parameter
from giz_site.exceptions import ApplicationError
from inference.apis import UploadInputSerializer, predict_stored_galaxy, read_upload
from inference.models import ModelVersion
from inference.services import predict_image_bytes
from labeling.models import Galaxy

# The original service refused uploads over 1 MB (Flask MAX_CONTENT_LENGTH); its form keeps that limit.
COMPAT_MAX_BYTES = 1 * 2**20


def _summary(values: list[float]) -> dict:
    if not values:
        return {"mean": None, "median": None, "stdev": None}
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "stdev": statistics.pstdev(values)}


def compat_response_body(*, result, galaxy: Galaxy | None = None, filename: str | None = None) -> dict:
    """The original service's response: members grouped by architecture, rejection in percent."""
    architectures = dict(
        ModelVersion.objects.filter(name__in=[*result.members, *result.rejection_members]).values_list(
            "name", "architecture"
        )
    )
    groups: dict[str, dict[str, float]] = {}
    for name, inclination in sorted(result.members.items()):
        groups.setdefault(architectures.get(name, ""), {})[name] = inclination
    inclinations: dict = {f"Group_{i}": members for i, (_, members) in enumerate(sorted(groups.items()))}
    # The ensemble's own summary (the spread is the members' standard deviation).
    # Plus sigma (not in the original): the 1-sigma uncertainty, wide for an image that is not a galaxy.
    inclinations["summary"] = {
        "mean": result.mean,
        "median": result.median,
        "stdev": result.spread,
        "sigma": result.sigma,
    }
    rejection: dict = {name: 100.0 * p for name, p in sorted(result.rejection_members.items())}
    rejection["summary"] = _summary(list(rejection.values()))
    body: dict = {"status": "success"}
    if galaxy is not None:
        body["galaxy"] = _compat_galaxy(galaxy)
    if filename is not None:
        body["filename"] = filename
    body["inclinations"] = inclinations
    body["rejection_likelihood"] = rejection
    return body


def _compat_galaxy(galaxy: Galaxy) -> dict:
    # The original wrote units into strings ("10.6848 deg"); clients parse them, so keep them.
    fov = 1.5 * galaxy.d25_arcmin if galaxy.d25_arcmin else None
    if fov is None:
        image = galaxy.images.filter(band=GalaxyImage.Band.COLOR, pixel_scale__isnull=False).first()
        fov = image.pixel_scale * image.width / 60 if image else None
    return {
        "pgc": str(galaxy.pgc),
        "ra": f"{galaxy.ra:.4f} deg",
        "dec": f"{galaxy.dec:.4f} deg",
        "fov": f"{fov:.2f} arcmin" if fov else "",
        "pa": f"{galaxy.position_angle} deg" if galaxy.position_angle is not None else "",
        "objname": galaxy.name,
    }


_compat_summary = inline_serializer(
    name="CompatSummary",
    fields={
        "mean": serializers.FloatField(allow_null=True),
        "median": serializers.FloatField(allow_null=True),
        "stdev": serializers.FloatField(allow_null=True),
    },
)
_compat_response = inline_serializer(
    name="CompatResponse",
    fields={
        "status": serializers.CharField(help_text="success"),
        "galaxy": inline_serializer(
            name="CompatGalaxy",
            fields={
                "pgc": serializers.JSONField(
                    help_text='A string for /api/pgc ("2557"), a number for /api/objname (2557), as the original.'
                ),
                "ra": serializers.CharField(help_text='e.g. "10.6848 deg"'),
                "dec": serializers.CharField(),
                "fov": serializers.CharField(help_text='e.g. "266.74 arcmin"'),
                "pa": serializers.CharField(),
                "objname": serializers.CharField(),
            },
            required=False,
        ),
        "filename": serializers.CharField(required=False),
        "inclinations": serializers.DictField(
            child=serializers.DictField(child=serializers.FloatField(allow_null=True)),
            help_text="Group_0, Group_1, ... (one per architecture: model name -> deg) and summary.",
        ),
        "rejection_likelihood": serializers.DictField(
            child=serializers.JSONField(),
            help_text="Rejection model name -> percent, and summary {mean, median, stdev}.",
        ),
    },
)
_compat_error = OpenApiResponse(
    description='The original\'s failure shape {"status": "failed", "message"} plus the standard "error" object.',
    response=inline_serializer(
        name="CompatError",
        fields={
            "status": serializers.CharField(),
            "message": serializers.CharField(),
            "error": serializers.JSONField(),
        },
    ),
)


class CompatApi(APIView):
    """Base of the compatibility views: errors also carry the original's status/message keys."""

    permission_classes = [AllowAny]

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(response.data, dict) and "error" in response.data:
            response.data = {"status": "failed", "message": response.data["error"]["message"], **response.data}
        return response

    def galaxies(self):
        """The galaxies this user may look up: the original's answer gives a gold galaxy's away, so staff only."""
        if getattr(self.request.user, "is_staff", False):
            return Galaxy.objects.all()
        return Galaxy.objects.exclude(is_gold=True)


def _compat_not_found(message: str) -> ApplicationError:
    return ApplicationError(message, code="not_found", status_code=status.HTTP_404_NOT_FOUND)


COMPAT_RESPONSES = {200: _compat_response, 400: _compat_error, 404: _compat_error, 413: _compat_error}


class CompatPgcApi(CompatApi):
    """IncliNET compatibility: GET /api/pgc/<id> -> the original response shape."""

    @extend_schema(
        operation_id="compat_pgc",
        parameters=[pgc_path_parameter()],
        responses=COMPAT_RESPONSES,
        tags=["compatibility (IncliNET)"],
    )
    def get(self, request, pgc: int):
        galaxy = self.galaxies().filter(pgc=pgc).first()
        if galaxy is None:
            raise _compat_not_found(f"Could not find PGC{pgc} in the database.")
        result = predict_stored_galaxy(galaxy)
        return Response(compat_response_body(result=result, galaxy=galaxy))


class CompatObjnameApi(CompatApi):
    """IncliNET compatibility: GET /api/objname/<name> (our catalogue's names; spaces and case ignored)."""

    @extend_schema(
        operation_id="compat_objname",
        parameters=[OpenApiParameter("objname", str, OpenApiParameter.PATH, description="e.g. NGC0224")],
        responses=COMPAT_RESPONSES,
        tags=["compatibility (IncliNET)"],
    )
    def get(self, request, objname: str):
        if "\x00" in objname or len(objname) > 64:  # no catalogue name looks like this (and NUL upsets SQL)
            raise _compat_not_found(f"Could not find object {objname[:64]!r}.")
        # "NGC 4579", "ngc4579" and "NGC4579" name the same galaxy: compare without spaces.
        compact = objname.replace(" ", "")
        galaxy = (
            self.galaxies()
            .annotate(compact_name=Replace("name", Value(" "), Value("")))
            .filter(Q(name__iexact=objname) | Q(compact_name__iexact=compact))
            .order_by("pgc")
            .first()
        )
        if galaxy is None:
            raise _compat_not_found(f"Could not find object {objname}.")
        body = compat_response_body(result=predict_stored_galaxy(galaxy), galaxy=galaxy)
        body["galaxy"]["pgc"] = galaxy.pgc  # the original answered a number here, a string for /api/pgc
        body["galaxy"]["objname"] = objname
        return Response(body)


class CompatFileApi(CompatApi):
    """IncliNET compatibility: POST /api/file with multipart field `file` (1 MB max, as the original)."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="compat_file",
        request={"multipart/form-data": UploadInputSerializer},
        responses=COMPAT_RESPONSES,
        tags=["compatibility (IncliNET)"],
    )
    def post(self, request):
        serializer = UploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        data = read_upload(upload, max_bytes=min(COMPAT_MAX_BYTES, settings.GIZ_IMAGE_MAX_BYTES))
        result = predict_image_bytes(data=data)
        return Response(compat_response_body(result=result, filename=upload.name))
