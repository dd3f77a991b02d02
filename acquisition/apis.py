"""REST API for image acquisition: fetch a galaxy's images now (staff)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from acquisition.services import galaxy_acquire_now
from giz_site.api_permissions import IsStaff
from giz_site.api_schema import pgc_path_parameter
from labeling.apis import ImageOutputSerializer
from labeling.models import Galaxy


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
