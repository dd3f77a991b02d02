"""REST API of what shows images: standards, the volunteer's next assignment, fetching a galaxy's images (staff)."""

from urllib.parse import urljoin

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from acquisition.models import GalaxyImage
from acquisition.selectors import standards_with_images
from acquisition.services import galaxy_acquire_now
from giz_site.api_pagination import paginated_response, paginated_serializer, pagination_parameters
from giz_site.api_permissions import IsStaff, IsVolunteer
from giz_site.api_schema import pgc_path_parameter
from giz_site.process_cache import ProcessCache
from labeling.apis import DATETIME
from labeling.models import Galaxy, StandardGalaxy
from labeling.selectors import assignment_grid
from labeling.services import assignment_next


class ImageOutputSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = GalaxyImage
        fields = ["id", "band", "format", "source", "width", "height", "pixel_scale", "url", "acquired_at"]
        ref_name = "GalaxyImage"

    def get_url(self, image) -> str:
        request = self.context.get("request")
        url = image.file.url
        return request.build_absolute_uri(url) if request else url

    def to_representation(self, image) -> dict:
        # Written out (the fields above, same values): every assignment shows its galaxy's images, and DRF's
        # field-by-field representation cost more than the rest of reading them.
        return {
            "id": image.id,
            "band": image.band,
            "format": image.format,
            "source": image.source,
            "width": image.width,
            "height": image.height,
            "pixel_scale": image.pixel_scale,
            "url": self.get_url(image),
            "acquired_at": DATETIME.to_representation(image.acquired_at),
        }


class StandardListApi(APIView):
    """The active standard galaxies volunteers compare against, by inclination."""

    permission_classes = [AllowAny]

    class OutputSerializer(serializers.ModelSerializer):
        pgc = serializers.IntegerField(source="galaxy.pgc")
        name = serializers.CharField(source="galaxy.name")
        images = ImageOutputSerializer(source="galaxy.images", many=True)

        class Meta:
            model = StandardGalaxy
            fields = ["id", "pgc", "name", "inclination", "inclination_source", "images"]
            ref_name = "Standard"

    @extend_schema(
        operation_id="standards_list",
        parameters=pagination_parameters(),
        responses=paginated_serializer(OutputSerializer, name="StandardPage"),
        tags=["galaxies"],
    )
    def get(self, request):
        return paginated_response(
            queryset=standards_with_images(),
            serializer_class=self.OutputSerializer,
            request=request,
            view=self,
            ordering=("inclination", "id"),
        )


def _standards_serialized(base_url: str) -> dict[int, dict]:
    """Every active standard as StandardListApi shows it, by id, its image URLs absolute on `base_url`."""
    data = StandardListApi.OutputSerializer(standards_with_images(), many=True, context={}).data
    for standard in data:
        for image in standard["images"]:
            image["url"] = urljoin(base_url, image["url"])
    return {standard["id"]: standard for standard in data}


# An assignment shows dozens of the few hundred standards, each with its images: serialized once per process and
# host for GIZ_PROCESS_CACHE_S rather than on every request.
_standards_shown = ProcessCache(_standards_serialized, seconds_setting="GIZ_PROCESS_CACHE_S")


class AssignmentGalaxyOutputSerializer(serializers.ModelSerializer):
    """The galaxy to label: no consensus, known value, b/a or position angle (they bias or give the answer away)."""

    images = ImageOutputSerializer(many=True)

    class Meta:
        model = Galaxy
        fields = ["pgc", "name", "ra", "dec", "d25_arcmin", "images"]
        ref_name = "AssignmentGalaxy"

    def to_representation(self, galaxy) -> dict:
        # Written out, same values: once per served galaxy (see AssignmentNextApi).
        images = ImageOutputSerializer(context=self.context)  # (self.fields would build every field first)
        return {
            "pgc": galaxy.pgc,
            "name": galaxy.name,
            "ra": galaxy.ra,
            "dec": galaxy.dec,
            "d25_arcmin": galaxy.d25_arcmin,
            "images": [images.to_representation(image) for image in galaxy.images.all()],
        }


class AssignmentNextApi(APIView):
    """The next galaxy for the signed-in volunteer with the standards to compare against and a one-time token.

    POST the answer to /api/votes/ with that token; the website's rules apply (one vote per galaxy, a token is
    used once, cited standards must be among those shown). 204 when nothing is left to label.
    """

    permission_classes = [IsVolunteer]

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expires_at = serializers.DateTimeField()
        galaxy = AssignmentGalaxyOutputSerializer()
        standards = serializers.SerializerMethodField()
        grid = serializers.SerializerMethodField(
            help_text="Grid degree (45-90) -> id of the standard to show there, as the website lays them out."
        )

        class Meta:
            ref_name = "Assignment"

        @extend_schema_field(StandardListApi.OutputSerializer(many=True))
        def get_standards(self, assignment) -> list[dict]:
            request = self.context["request"]
            active = _standards_shown.get(request.build_absolute_uri("/"))
            missing = [sid for sid in assignment.standard_ids if sid not in active]  # deactivated since drawn
            shown = [active[sid] for sid in assignment.standard_ids if sid in active]
            if missing:
                shown += StandardListApi.OutputSerializer(
                    standards_with_images(ids=missing), many=True, context=self.context
                ).data
            return sorted(shown, key=lambda s: (s["inclination"], s["id"]))

        def get_grid(self, assignment) -> dict[str, int]:
            return assignment_grid(assignment=assignment)

        def to_representation(self, assignment) -> dict:
            # Written out, same values: the hottest response of the API (once per volunteer round), where DRF's
            # generic representation of the galaxy and its images cost several milliseconds of CPU.
            galaxy = AssignmentGalaxyOutputSerializer(context=self.context)
            return {
                "token": assignment.token,
                "expires_at": DATETIME.to_representation(assignment.expires_at),
                "galaxy": galaxy.to_representation(assignment.galaxy),
                "standards": self.get_standards(assignment),
                "grid": self.get_grid(assignment),
            }

    @extend_schema(operation_id="assignments_next", responses={200: OutputSerializer, 204: None}, tags=["votes"])
    def get(self, request):
        assignment = assignment_next(volunteer=request.user)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(self.OutputSerializer(assignment, context={"request": request}).data)


class GalaxyAcquireApi(APIView):
    """Fetch and store a galaxy's images synchronously (staff); answers the stored images."""

    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="galaxies_acquire",
        parameters=[pgc_path_parameter()],
        request=None,
        responses=ImageOutputSerializer(many=True),
        tags=["galaxies"],
    )
    def post(self, request, pgc: int):
        galaxy = get_object_or_404(Galaxy, pgc=pgc)
        images = galaxy_acquire_now(galaxy=galaxy)
        return Response(ImageOutputSerializer(images, many=True, context={"request": request}).data)
