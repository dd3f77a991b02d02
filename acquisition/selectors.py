"""Reads of the acquisition area: images, standards with their images, galaxies still without images."""

from django.db.models import Prefetch, QuerySet

from acquisition.models import GalaxyImage
from labeling.models import StandardGalaxy


def standards_with_images(*, ids=None) -> QuerySet[StandardGalaxy]:
    """Active standards (or the given ones) with their galaxy and its images, bands in a stable order."""
    standards = StandardGalaxy.objects.filter(active=True) if ids is None else StandardGalaxy.objects.filter(pk__in=ids)
    images = Prefetch("galaxy__images", queryset=GalaxyImage.objects.order_by("band", "format"))
    return standards.select_related("galaxy").prefetch_related(images)
